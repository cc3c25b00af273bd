"""How to measure and tune a user's own query pipeline: every option of ``evaluate`` and ``tune``, declared once (the
command line, ``evaluate_pipeline`` and ``tune_pipeline`` read these classes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from haystack_hardneg.evaluate.selection import FUSION_ALPHAS, FUSION_RULES, FUSION_SIGNIFICANCE
from haystack_hardneg.options import Options, option


@dataclass
class PipelineEvalConfig(Options):
    """Which of the pipeline's inputs get the query, which output is the result, and how its documents are matched
    to the labels' documents."""

    query_inputs: list[str] = option(help=(
        "COMPONENT.INPUT that receives the query text (repeat the flag for several); none given: every input named "
        "query or text that no other component feeds"), default_factory=list, flag="--query-input",
        metavar="COMPONENT.INPUT")
    output: str | None = option(None, help=(
        "the component whose `documents` output is the pipeline's result; none: the only one that outputs "
        "documents and feeds no other"))
    match: str = option("id", help=(
        "the document field a label's document is compared with: id, or meta.KEY (e.g. meta.parent_id for chunks "
        "written by `haystack-hardneg index`, meta.source_id for Haystack's DocumentSplitter, meta.url, "
        "meta.file_path); a document's first (best-ranked) chunk counts"))
    k: int = option(10, help="cut-off of nDCG and MRR")
    recall_k: int = option(100, help="cut-off of recall")
    limit: int | None = option(None, help="evaluate the first N labelled queries only (in id order)")
    test: Literal["student", "fisher"] = option("student", help=(
        "paired test of a difference: student (paired t-test) or fisher (randomisation test)"))

    def validate(self) -> None:
        if self.match != "id" and not (self.match.startswith("meta.") and len(self.match) > 5):
            raise ValueError(f"match must be id or meta.KEY, got {self.match!r}.")
        if self.k < 1 or self.recall_k < 1 or (self.limit is not None and self.limit < 1):
            raise ValueError("k, recall_k and limit must be >= 1.")
        for name in self.query_inputs:
            if name.count(".") != 1 or not all(name.split(".")):
                raise ValueError(f"a query input is COMPONENT.INPUT, got {name!r}.")


@dataclass
class TuneConfig(Options):
    """How ``tune`` chooses the re-ranker's fusion weight for a pipeline."""

    ranker: str = option(cli=False, help=(
        "the cross-encoder folder (or hub id) to add, or to put in the ranker's place (the tune command's --ranker)"))
    tune_fraction: float = option(0.5, help=(
        "share of the labelled queries the weight is chosen on; it is reported on the others (held apart)"))
    seed: int = option(0, help="seed of the split into tuning and report queries")
    rule: str = option("argmax", choices=FUSION_RULES, help="how the weight is chosen among those tried")
    significance: float | None = option(FUSION_SIGNIFICANCE, help=(
        "a weight other than 0 ships only when its gain over the pipeline's own order is significant at this "
        "level (none: the rule's choice ships)"))
    weights: list[float] = option(default_factory=lambda: list(FUSION_ALPHAS), flag="--weight", metavar="W", help=(
        "a fusion weight to try (0: the pipeline's own order, 1: the ranker alone); repeat the flag for each, 0 "
        "among them"))

    def validate(self) -> None:
        if not 0.0 < self.tune_fraction < 1.0:
            raise ValueError(f"tune_fraction must be in (0, 1), got {self.tune_fraction}.")
        if self.significance is not None and not 0.0 < self.significance < 1.0:
            raise ValueError(f"significance must be in (0, 1) or none, got {self.significance}.")
        if not self.weights or any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise ValueError("weights must be numbers in [0, 1].")
        if 0.0 not in self.weights:
            raise ValueError("weights must include 0 (the pipeline's own order), the baseline a weight must beat.")

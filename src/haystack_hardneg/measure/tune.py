"""Adding the fine-tuned ranker to a user's pipeline, and choosing its fusion weight for that pipeline's retriever.

``tune_pipeline`` scores every document the pipeline's first stage hands the ranker once, then tries each fusion
weight offline: weight 0 is the first stage's own order, 1 the cross-encoder alone. The weight is chosen on a share
of the labelled queries (``choose_fusion_weight``: a weight other than 0 only on a significant gain) and reported on
the others, against the pipeline as it was given, so the figures a user reads were not used to choose it.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, Pipeline

from haystack_hardneg.evaluate.selection import choose_fusion_weight, seeded_order
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.measure.config import PipelineEvalConfig, TuneConfig
from haystack_hardneg.measure.pipeline import (
    LabelledQueries,
    compare,
    evaluate_pipeline,
    matched_ids,
    per_query_metrics,
    result_component,
    run_pipeline,
    summary,
)
from haystack_hardneg.rank.ranker import CROSS_ENCODER_SCORE, RETRIEVER_SCORE, CrossEncoderRanker
from haystack_hardneg.scoring.fusion import fuse

RANKER_TYPE = f"{CrossEncoderRanker.__module__}.{CrossEncoderRanker.__name__}"
# The ranker's name when it is added after the pipeline's result.
ADDED_RANKER = "hardneg_ranker"
# Where the tuned YAML records what its weight was chosen on.
TUNE_METADATA_KEY = "haystack_hardneg_tune"


def _is_ranker(pipeline: Pipeline, name: str) -> bool:
    """A component that takes a query and documents and gives documents: a ranker, ours can take its place."""
    sockets = pipeline.graph.nodes[name]["input_sockets"]
    return "query" in sockets and "documents" in sockets


def with_ranker(pipeline: Pipeline, model: str, *, result: str, **params: Any) -> tuple[str, int | None]:
    """Our ranker on ``model`` in ``pipeline`` (changed in place): in the place of ``result`` when that is a ranker
    (keeping the init parameters ours shares with it, e.g. top_k, prefixes, meta_fields_to_embed), else after it;
    ``params`` override. Returns the ranker's name and the replaced ranker's ``top_k`` (``None`` when added)."""
    if _is_ranker(pipeline, result):
        shared = set(inspect.signature(CrossEncoderRanker.__init__).parameters) - {"self"}
        kept = {k: v for k, v in pipeline.get_component(result).to_dict()["init_parameters"].items() if k in shared}
        senders = [(u, d["from_socket"].name, d["to_socket"].name)
                   for u, _, d in pipeline.graph.in_edges(result, data=True)]
        pipeline.remove_component(result)
        ranker = CrossEncoderRanker.from_dict({"type": RANKER_TYPE, "init_parameters": {**kept, "model": model,
                                                                                       **params}})
        pipeline.add_component(result, ranker)
        for sender, out, into in senders:
            pipeline.connect(f"{sender}.{out}", f"{result}.{into}")
        return result, kept.get("top_k")
    pipeline.add_component(ADDED_RANKER, CrossEncoderRanker(model=model, **params))
    pipeline.connect(f"{result}.documents", f"{ADDED_RANKER}.documents")
    return ADDED_RANKER, None


def split_queries(ids, fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(tuning, report) query ids: the first ``fraction`` in the order of a seeded hash of the id, so a query's side
    does not depend on which other queries are labelled."""
    ordered = seeded_order(ids, seed)
    size = min(max(1, round(len(ordered) * fraction)), len(ordered) - 1)
    return sorted(ordered[:size]), sorted(ordered[size:])


def _candidate_scores(documents: list[Document]) -> tuple[list[Document], list[float], list[float]]:
    """The scored candidates (in the pipeline's order), their cross-encoder and first-stage scores."""
    scored = [d for d in documents if d.meta.get(CROSS_ENCODER_SCORE) is not None]
    if any(d.meta.get(RETRIEVER_SCORE) is None for d in scored):
        raise ValueError("Documents reached the ranker without a score: fusion needs the first stage's scores "
                         "(a retriever, or a joiner that keeps them).")
    return scored, [d.meta[CROSS_ENCODER_SCORE] for d in scored], [d.meta[RETRIEVER_SCORE] for d in scored]


def fused_ranking(documents: list[Document], weight: float, top_k: int, match: str) -> list[str]:
    """The labelled-document keys the ranker at ``weight`` would return (its ``top_k``), best first."""
    import numpy as np

    scored, own, first = _candidate_scores(documents)
    if not scored:
        return []
    scores = fuse(np.array(own), np.array(first), weight) if weight < 1.0 else np.array(own)
    order = np.argsort(-scores, kind="stable")[:top_k]
    return matched_ids([scored[i] for i in order], match)


def _as_run(ranked: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    return {q: {d: float(len(ids) - i) for i, d in enumerate(ids)} for q, ids in ranked.items()}


def _informative(qrels, candidates: dict[str, list[Document]], match: str) -> int:
    return sum(any(qrels[q].get(d, 0) > 0 for d in matched_ids(docs, match)) for q, docs in candidates.items())


def choose_weight(candidates: dict[str, list[Document]], labelled: LabelledQueries, top_k: int,
                  eval_config: PipelineEvalConfig, config: TuneConfig) -> dict[str, Any]:
    """``choose_fusion_weight`` over the tuning queries' scored candidates."""
    runs = {w: _as_run({q: fused_ranking(candidates[q], w, top_k, eval_config.match) for q in labelled.queries})
            for w in config.weights}
    return choose_fusion_weight(labelled.qrels, runs, _informative(labelled.qrels, candidates, eval_config.match),
                                rule=config.rule, significance=config.significance, slice_name="tuning")


def tune_pipeline(pipeline: Pipeline, labelled: LabelledQueries, config: TuneConfig,
                  eval_config: PipelineEvalConfig | None = None, *, progress_bar: bool = True
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fusion weight for ``pipeline`` with our ranker (``config.ranker``) chosen on a share of ``labelled``
    and, on the other queries, the pipeline as given against the tuned one (and the ranker alone), paired. Returns
    that report and the tuned pipeline as a dict (the ranker's ``fusion_alpha`` set to the weight; ``pipeline``
    itself is left holding the scoring ranker)."""
    eval_config = eval_config or PipelineEvalConfig()
    tuning_ids, report_ids = split_queries(labelled.queries, config.tune_fraction, config.seed)
    tuning, reported = labelled.subset(tuning_ids), labelled.subset(report_ids)
    before = evaluate_pipeline(pipeline, reported, eval_config, progress_bar=progress_bar)
    result = result_component(pipeline, eval_config.output)
    # Every candidate scored once, in full: each weight's ranking is then made offline.
    name, replaced_top_k = with_ranker(pipeline, config.ranker, result=result, fusion_alpha=None, top_k=10**9)
    sender = next(u for u, _, d in pipeline.graph.in_edges(name, data=True) if d["to_socket"].name == "documents")
    # In the first stage's order, as the ranker meets them: weight 0 then ranks exactly as the first stage did.
    candidates = run_pipeline(pipeline, labelled.queries, replace(eval_config, output=name), in_order_of=sender,
                              progress_bar=progress_bar)
    # An added ranker re-orders all that the pipeline returned; one in a ranker's place returns what it did.
    top_k = replaced_top_k or max(1, *(len(docs) for docs in candidates.values()))
    choice = choose_weight({q: candidates[q] for q in tuning.queries}, tuning, top_k, eval_config, config)
    report = _report(before, candidates, reported, choice, top_k, eval_config)
    report.update(ranker=config.ranker, ranker_component=name, top_k=top_k, tuning_queries=len(tuning.queries),
                  labels=labelled.source, rule=config.rule, significance=config.significance, slice_name="tuning")
    data = pipeline.to_dict()
    data["components"][name]["init_parameters"].update(top_k=top_k, fusion_alpha=float(choice["best_alpha"]))
    return report, data


def _report(before: dict[str, Any], candidates: dict[str, list[Document]], reported: LabelledQueries,
            choice: dict[str, Any], top_k: int, eval_config: PipelineEvalConfig) -> dict[str, Any]:
    """Before, tuned and ranker-alone metrics on the report queries, with the tuned and ranker-alone differences."""
    systems = {"as given": before}
    for label, weight in (("tuned", choice["best_alpha"]), ("ranker alone", 1.0)):
        ranked = {q: fused_ranking(candidates[q], weight, top_k, eval_config.match) for q in reported.queries}
        values = per_query_metrics(reported.qrels, ranked, eval_config)
        systems[label] = {"metrics": summary(values), "per_query": values}
    return {
        "weight": choice["best_alpha"],
        "chosen_on": choice,
        "report_queries": len(reported.queries),
        "metrics": {label: s["metrics"] for label, s in systems.items()},
        "differences": {label: compare(systems[label], before, test=eval_config.test)
                        for label in ("tuned", "ranker alone")},
    }


def tuned_yaml(data: dict[str, Any], report: dict[str, Any]) -> str:
    """The tuned pipeline (``tune_pipeline``'s dict) as YAML, with what its weight was chosen on in its ``metadata``
    and a header comment."""
    data = {**data, "metadata": dict(data.get("metadata") or {})}
    data.setdefault("metadata", {})[TUNE_METADATA_KEY] = {
        "ranker": report["ranker"], "fusion_alpha": report["weight"], "labels": report["labels"],
        "tuning_queries": report["tuning_queries"], "report_queries": report["report_queries"],
        "p_value": report["chosen_on"]["p_value"], "fallback": report["chosen_on"]["fallback"]}
    from haystack.marshal import YamlMarshaller

    header = (f"# Tuned by `haystack-hardneg tune`: {report['ranker_component']} fused with the first stage at weight "
              f"{report['weight']}, chosen on {report['tuning_queries']} labelled queries of {report['labels']}\n"
              f"# (0 keeps the first stage's order; details under metadata.{TUNE_METADATA_KEY}).\n")
    return header + YamlMarshaller().marshal(data)


def write_tuned_yaml(path: str | Path, data: dict[str, Any], report: dict[str, Any]) -> Path:
    atomic_write_text(path, tuned_yaml(data, report))
    return Path(path)

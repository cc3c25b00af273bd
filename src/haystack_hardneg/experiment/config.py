"""What an experiment runs, read from a YAML file (see examples/experiment_*.yml)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from haystack_hardneg.evaluate.selection import FUSION_RULES
from haystack_hardneg.mine.config import STRATEGIES, MiningConfig, check_fits_ensemble

DEFAULT_MODELS_DIR = "~/.cache/hardneg-models"
# What a variant may set: every MiningConfig option but the strategy (its own key) and the seed (the experiment's).
MINING_OPTIONS = frozenset(f.name for f in fields(MiningConfig)) - {"strategy", "seed"}


def expand(value: str) -> str:
    """``~`` and ``$VARS`` expanded; ``$HARDNEG_MODELS`` defaults to the local models folder."""
    models = os.environ.get("HARDNEG_MODELS", DEFAULT_MODELS_DIR)
    value = value.replace("${HARDNEG_MODELS}", models).replace("$HARDNEG_MODELS", models)
    return os.path.expanduser(os.path.expandvars(value))


@dataclass
class ExperimentConfig:
    """One experiment.

    :param data: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<train_split>.tsv, qrels/<test_split>.tsv).
    :param out: the run folder: every stage's output, the config, versions, results and charts.
    :param members: the ensemble, as ``MemberSpec`` dicts (``model``, ``weight``, prompts, ...).
    :param combine: ``concat`` or ``mean``.
    :param cache_dir: embedding cache (shared between runs; ``None``: no cache).
    :param meta_fields: meta fields embedded and ranked before the text (BEIR: ``title``).
    :param separator: between those fields and the text.
    :param store: Qdrant settings: ``{}`` for local mode in ``out/qdrant``, or ``{"url": ..., "index": ...}``.
    :param lexical: a BM25 member for a hybrid first stage, e.g. ``{"language": "english", "weight": "auto"}``
        (``auto``: the weight is chosen on the training queries); ``None``: the dense ensemble alone.
    :param retrieve_k: first-stage depth (Recall@retrieve_k is reported).
    :param rerank_k: first-stage candidates the re-rankers re-score (and the validation candidates per query).
    :param strategies: negative strategies, one re-ranker each: built-in names or names defined in ``variants``.
    :param mining: ClusterNegativeMiner options (num_negatives, rank_window, guard_ratio, n_clusters, ...).
    :param variants: named variants of a built-in strategy with their own mining options, to study the method at
        the same training budget, e.g. ``{"cluster_no_guard": {"strategy": "ensemble_cluster", "guard_ratio":
        None}}``; each is mined, trained and reported like a built-in strategy.
    :param training: TrainingConfig options; ``base_model`` is required.
    :param max_train_queries: train on at most this many training queries (a budget; ``None``: all).
    :param significance: ``student`` (paired t-test) or ``fisher`` (randomisation test).
    :param fusion_rule: how each re-ranker's fusion weight is chosen on its validation slice: ``argmax`` (the best
        weight) or ``one_se`` (within one standard error of the best, the closest to 0.5; see
        ``evaluate.selection.FUSION_RULES``). Only the report depends on it: changing it retrains nothing.
    :param seed: seeds mining, the training split and training.
    """

    data: str
    training: dict[str, Any]
    out: str = "runs/experiment"
    members: list[dict[str, Any]] = field(default_factory=lambda: [{"model": "$HARDNEG_MODELS/all-MiniLM-L6-v2"}])
    combine: str = "concat"
    cache_dir: str | None = "~/.cache/haystack-hardneg/embeddings"
    meta_fields: list[str] = field(default_factory=lambda: ["title"])
    separator: str = " "
    store: dict[str, Any] = field(default_factory=dict)
    lexical: dict[str, Any] | None = None
    train_split: str = "train"
    test_split: str = "test"
    retrieve_k: int = 100
    rerank_k: int = 30
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    mining: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_train_queries: int | None = None
    significance: str = "student"
    fusion_rule: str = "argmax"
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_variants()
        unknown = [s for s in self.strategies if s not in STRATEGIES and s not in self.variants]
        if unknown:
            raise ValueError(f"Unknown strategies {unknown}; choose among {STRATEGIES} or define them in variants.")
        unknown_options = sorted(set(self.mining) - MINING_OPTIONS)
        if unknown_options:
            raise ValueError(f"mining: unknown option(s) {unknown_options}; known: {sorted(MINING_OPTIONS)}.")
        for name in self.strategies:
            if name not in self.variants:
                self._check_mining(name, f"Strategy {name!r} with the mining settings")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"A strategy is named twice in {self.strategies}.")
        if not self.strategies:
            raise ValueError("Name at least one negative strategy.")
        if "base_model" not in self.training:
            raise ValueError("training.base_model is required (a hub id or a local folder).")
        if self.significance not in ("student", "fisher"):
            raise ValueError("significance must be 'student' or 'fisher'.")
        if self.fusion_rule not in FUSION_RULES:
            raise ValueError(f"fusion_rule must be one of {FUSION_RULES}, got {self.fusion_rule!r}.")
        if not 0 < self.rerank_k <= self.retrieve_k:
            raise ValueError("rerank_k must be in 1 .. retrieve_k.")
        if not self.members:
            raise ValueError("The ensemble needs at least one member.")
        if self.lexical is not None:
            unknown = set(self.lexical) - {"language", "weight"}
            weight = self.lexical.get("weight", "auto")
            if unknown or not (weight == "auto" or 0.0 <= float(weight) <= 1.0):
                raise ValueError("lexical takes language (a Snowball stemmer language or null) and weight "
                                 "('auto' or 0..1).")

    def _check_variants(self) -> None:
        for name, variant in self.variants.items():
            if name in STRATEGIES or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"Variant name {name!r} must be a new folder-safe name, not one of {STRATEGIES}.")
            if not isinstance(variant, dict) or variant.get("strategy") not in STRATEGIES:
                raise ValueError(f"Variant {name!r} needs strategy: one of {STRATEGIES}.")
            unknown = sorted(set(variant) - MINING_OPTIONS - {"strategy"})
            if unknown:
                raise ValueError(f"Variant {name!r}: unknown mining option(s) {unknown}; known: {sorted(MINING_OPTIONS)}.")
            self._check_mining(name, f"Variant {name!r}")

    def _check_mining(self, name: str, who: str) -> None:
        """Values that do not fit together (e.g. lexical_weight on bm25) fail here, not after indexing."""
        strategy, overrides = self.mining_for(name)
        settings = {k: v for k, v in {**self.mining, **overrides}.items() if k in MINING_OPTIONS}
        try:
            check_fits_ensemble(MiningConfig(**{**settings, "strategy": strategy}), len(self.members), self.combine)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{who}: {error}") from None

    def mining_for(self, strategy: str) -> tuple[str, dict[str, Any]]:
        """The built-in strategy a name mines with, and the mining options that differ from ``mining``."""
        variant = self.variants.get(strategy)
        if variant is None:
            return strategy, {}
        return variant["strategy"], {k: v for k, v in variant.items() if k != "strategy"}

    def resolved(self) -> "ExperimentConfig":
        """Paths and ``$HARDNEG_MODELS`` expanded."""
        members = [{**m, "model": expand(m["model"])} for m in self.members]
        training = {**self.training, "base_model": expand(self.training["base_model"])}
        return ExperimentConfig(**{**asdict(self), "data": expand(self.data), "out": expand(self.out),
                                   "members": members, "training": training,
                                   "cache_dir": expand(self.cache_dir) if self.cache_dir else None})

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> "ExperimentConfig":
        """Settings from a YAML file; a relative ``data`` path is taken from the file's folder (so that a config
        shipped beside its data works from anywhere); ``out`` stays relative to the working directory."""
        import yaml

        path = Path(path)
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(settings, dict):
            raise ValueError(f"{path}: an experiment config is a mapping of settings.")
        data = settings.get("data")
        if isinstance(data, str) and not Path(expand(data)).is_absolute():
            settings["data"] = str((path.parent / expand(data)).resolve())
        settings.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**settings)

"""What an experiment runs, read from a YAML file (see examples/experiment_*.yml)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from haystack_hardneg.defaults import DEFAULT_CACHE_DIR, expand
from haystack_hardneg.embed.ensemble import MemberSpec
from haystack_hardneg.evaluate.selection import FUSION_RULES
from haystack_hardneg.experiment.sections import lexical_section, store_section
from haystack_hardneg.export.config import ExportConfig
from haystack_hardneg.ingest.beir import BeirSplit, load_beir
from haystack_hardneg.mine.config import STRATEGIES, MiningConfig, check_fits_ensemble
from haystack_hardneg.options import ConfigError, check_types, from_mapping
from haystack_hardneg.train.config import TrainingConfig, resolve_loss


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
    :param store: Qdrant settings: ``{}`` for local mode in ``out/qdrant``, or ``{"url": ..., "index": ...,
        "api_key_env": "QDRANT_API_KEY"}`` (the key is read from that environment variable, never written).
    :param lexical: a BM25 member for a hybrid first stage, e.g. ``{"language": "english", "weight": "auto"}``
        (``auto``: the weight is chosen on the training queries, or on a seeded sample of ``tuning_queries`` of
        them); ``None``: the dense ensemble alone.
    :param train_split: the qrels file of the training queries (``qrels/<train_split>.tsv``).
    :param test_split: the qrels file of the test queries, never used to choose a setting.
    :param retrieve_k: first-stage depth (Recall@retrieve_k is reported).
    :param rerank_k: first-stage candidates the re-rankers re-score (and the validation candidates per query).
    :param strategies: negative strategies, one re-ranker each: built-in names or names defined in ``variants``.
    :param mining: ClusterNegativeMiner options (num_negatives, rank_window, guard_ratio, n_clusters, ...).
    :param variants: named variants of a built-in strategy with their own mining options, to study the method at
        the same training budget, e.g. ``{"cluster_no_guard": {"strategy": "ensemble_cluster", "guard_ratio":
        None}}``; each is mined, trained and reported like a built-in strategy.
    :param training: TrainingConfig options; ``base_model`` is required.
    :param max_train_queries: train on at most this many training queries (a budget; ``None``: all).
    :param min_relevance: the lowest grade that makes a judged document a positive to train on (graded data sets:
        e.g. 2 to train on the clearly relevant only); every grade counts in nDCG, and no document judged relevant
        at any grade is ever a negative.
    :param on_missing: judgements naming a query or document the data lacks: ``error`` (stop and list them) or
        ``skip`` (drop them; the report counts them).
    :param significance: ``student`` (paired t-test) or ``fisher`` (randomisation test).
    :param fusion_rule: how each re-ranker's fusion weight is chosen on its validation slice: ``argmax`` (the best
        weight) or ``one_se`` (within one standard error of the best, the closest to 0.5; see
        ``evaluate.selection.FUSION_RULES``). Only the report depends on it: changing it retrains nothing.
    :param rerank_backend: ``None`` (torch) or export options (``ExportConfig`` keys but ``model_dir``, e.g.
        ``{"backend": "openvino", "quantize": "int8"}``): each trained re-ranker is exported, checked against its
        fp32 scores, and re-ranks with that export; the report gives its latency and the check.
    :param seed: seeds mining, the training split and training (the latter two: unless ``training_seed`` is set).
    :param training_seed: seeds the re-rankers' training alone (validation split, order of rows, new head), in place
        of ``seed``: repeats of a run that differ only there share its mined triplets, so their spread is the
        training's noise. ``None``: ``seed``.
    """

    data: str
    training: dict[str, Any]
    out: str = "runs/experiment"
    members: list[dict[str, Any]] = field(default_factory=lambda: [{"model": "$HARDNEG_MODELS/all-MiniLM-L6-v2"}])
    combine: str = "concat"
    cache_dir: str | None = DEFAULT_CACHE_DIR
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
    min_relevance: int = 1
    on_missing: str = "error"
    significance: str = "student"
    fusion_rule: str = "argmax"
    rerank_backend: dict[str, Any] | None = None
    seed: int = 0
    training_seed: int | None = None

    def __post_init__(self) -> None:
        """The whole config is checked here, before any stage runs: every error names the key at fault."""
        try:
            check_types(self)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if not self.strategies:
            raise ConfigError("Name at least one negative strategy.")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"A strategy is named twice in {self.strategies}.")
        unknown = [s for s in self.strategies if s not in STRATEGIES and s not in self.variants]
        if unknown:
            raise ConfigError(f"Unknown strategies {unknown}; choose among {STRATEGIES} or define them in variants.")
        # The mining section alone first, so that an unknown key is named where it was written (with a strategy
        # that takes every option; each strategy's and variant's own combination is checked next).
        from_mapping(MiningConfig, self.mining, where="mining", strategy=STRATEGIES[0], seed=self.seed)
        self._check_variants()
        # Before the training section, whose own seed check would name the wrong key.
        if self.training_seed is not None and (not isinstance(self.training_seed, int)
                                               or isinstance(self.training_seed, bool)):
            raise ConfigError(f"training_seed must be an integer or null, got {self.training_seed!r}.")
        # The typed sections, built once here and read from here on (the mappings stay as written: the keys hash
        # them).
        self._mining = {name: self._mining_section(name) for name in [*self.strategies, *self.variants]}
        self._check_training()
        self._check_settings()
        self.lexical_section = lexical_section(self.lexical)
        self.store_section = store_section(self.store)
        self._export = None if self.rerank_backend is None else \
            from_mapping(ExportConfig, self.rerank_backend, where="rerank_backend", model_dir="")

    def _check_variants(self) -> None:
        for name, variant in self.variants.items():
            if name in STRATEGIES or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ConfigError(f"Variant name {name!r} must be a new folder-safe name, not one of {STRATEGIES}.")
            if not isinstance(variant, dict) or variant.get("strategy") not in STRATEGIES:
                raise ConfigError(f"Variant {name!r} needs strategy: one of {STRATEGIES}.")
            strategy, overrides = self.mining_for(name)
            from_mapping(MiningConfig, overrides, where=f"Variant {name!r}", what="mining option", strategy=strategy,
                         seed=self.seed)

    def _check_training(self) -> None:
        if not isinstance(self.training, dict) or "base_model" not in self.training:
            raise ConfigError("training.base_model is required (a hub id or a local folder).")
        self._training = resolve_loss(from_mapping(TrainingConfig, self.training, where="training", output_dir="",
                                                   strategy="", seed=self.effective_training_seed,
                                                   data_description=""), teacher_scores=True)

    def _check_settings(self) -> None:
        if self.on_missing not in ("error", "skip"):
            raise ConfigError(f"on_missing must be 'error' or 'skip', got {self.on_missing!r}.")
        if not isinstance(self.min_relevance, int) or isinstance(self.min_relevance, bool) or self.min_relevance < 1:
            raise ConfigError(f"min_relevance must be a whole number >= 1, got {self.min_relevance!r}.")
        if self.significance not in ("student", "fisher"):
            raise ConfigError("significance must be 'student' or 'fisher'.")
        if self.fusion_rule not in FUSION_RULES:
            raise ConfigError(f"fusion_rule must be one of {FUSION_RULES}, got {self.fusion_rule!r}.")
        if not 0 < self.rerank_k <= self.retrieve_k:
            raise ConfigError("rerank_k must be in 1 .. retrieve_k.")
        if not self.members:
            raise ConfigError("The ensemble needs at least one member.")
        for i, member in enumerate(self.members):
            if not isinstance(member, dict):
                raise ConfigError(f"members[{i}]: a member is a mapping with a model, e.g. "
                                  f"{{model: all-MiniLM-L6-v2}}; "
                                  f"got {member!r}.")
            try:
                MemberSpec.coerce(member)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"members[{i}]: {error}") from None
            _refuse_literal_secrets(member, f"members[{i}]")

    def load_splits(self) -> dict[str, BeirSplit]:
        """The test and the training split, validated with the config's on-missing policy; a training query needs a
        judgement of at least ``min_relevance``, a test query any relevant one (test metrics use every grade)."""
        return {"test": load_beir(self.data, self.test_split, on_missing=self.on_missing),
                "train": load_beir(self.data, self.train_split, on_missing=self.on_missing,
                                   min_relevance=self.min_relevance)}

    def mining_config(self, name: str) -> MiningConfig:
        """The typed mining settings of a strategy or variant: ``mining:``, the variant's own options, the seed."""
        return self._mining[name]

    def _mining_section(self, name: str) -> MiningConfig:
        strategy, overrides = self.mining_for(name)
        where = f"Variant {name!r}" if name in self.variants else f"Strategy {name!r} with the mining settings"
        config = from_mapping(MiningConfig, {**self.mining, **overrides}, where=where, strategy=strategy,
                              seed=self.seed)
        try:
            check_fits_ensemble(config, len(self.members), self.combine)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        return config

    def training_config(self, *, output_dir: str = "", strategy: str = "", data_description: str = ""
                        ) -> TrainingConfig:
        """The typed training settings of one re-ranker: ``training:`` plus what the experiment sets itself (left
        empty where only the settings are read). The loss ``auto`` is the one it trains with on triplets mined
        here, which carry the ensemble's scores."""
        return replace(self._training, output_dir=output_dir, strategy=strategy, data_description=data_description)

    @property
    def effective_training_seed(self) -> int:
        """The seed the re-rankers train with: ``training_seed``, else ``seed``."""
        return self.seed if self.training_seed is None else self.training_seed

    def export_config(self, model_dir: str) -> ExportConfig | None:
        """The typed export settings of ``rerank_backend`` for one re-ranker (``None``: torch)."""
        return None if self._export is None else replace(self._export, model_dir=model_dir)

    def mining_for(self, strategy: str) -> tuple[str, dict[str, Any]]:
        """The built-in strategy a name mines with, and the mining options that differ from ``mining``."""
        variant = self.variants.get(strategy)
        if variant is None:
            return strategy, {}
        return variant["strategy"], {k: v for k, v in variant.items() if k != "strategy"}

    def resolved(self) -> "ExperimentConfig":
        """Paths and ``$HARDNEG_MODELS`` expanded."""
        members = [{**m, "model": expand(m["model"])} if "model" in m else m for m in self.members]
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
        try:
            settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())}).") from None
        except RecursionError:
            raise ConfigError(f"{path}: not valid YAML here (nested too deeply).") from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text ({error.reason}); save the file as UTF-8.") from None
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: an experiment config is a mapping of settings.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(settings) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}.")
        try:
            data = settings.get("data")
            if isinstance(data, str) and not Path(expand(data)).is_absolute():
                settings["data"] = str((path.parent / expand(data)).resolve())
            settings.update({k: v for k, v in overrides.items() if v is not None})
            return cls(**settings)
        except (ConfigError, TypeError, ValueError) as error:
            # TypeError: a required setting (data, training) is missing, or a value of a type no check foresaw.
            raise ConfigError(f"{path}: {' '.join(str(error).split())}") from None


def _refuse_literal_secrets(value: Any, where: str) -> None:
    """A key written into the config (Haystack's token secret) would be copied into the run folder: refused."""
    if isinstance(value, dict):
        if value.get("type") == "token":
            raise ConfigError(f"{where}: a key is never written in a config; give it as an environment variable "
                              "({type: env_var, env_vars: [NAME], strict: true}).")
        for key, item in value.items():
            _refuse_literal_secrets(item, f"{where}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _refuse_literal_secrets(item, f"{where}[{position}]")

"""What each stage of an experiment depends on, as a key: pure functions of the config, the data and the upstream
keys (no store, no models, no lock), so that a run folder can be checked against a config without running it."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.stages import file_fingerprint, folder_fingerprint, stage_key
from haystack_hardneg.train.config import KEYED_WHEN_SET, TEACHER_LOSSES, TrainingConfig, resolve_loss
from haystack_hardneg.train.heads import resolve_head
from haystack_hardneg.train.validation import VALIDATION_SPLIT


def data_fingerprint(config: ExperimentConfig) -> str:
    data = Path(config.data)
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{config.train_split}.tsv",
                   f"qrels/{config.test_split}.tsv"):
        if not (data / needed).is_file():
            raise FileNotFoundError(f"The experiment needs {data / needed} (BEIR layout).")
    return file_fingerprint(data / "corpus.jsonl", data / "queries.jsonl",
                            data / "qrels" / f"{config.train_split}.tsv", data / "qrels" / f"{config.test_split}.tsv")


def training_query_ids(config: ExperimentConfig, train_split) -> list[str]:
    """The training queries, cut to ``max_train_queries`` (a fixed, seeded sample) when set."""
    query_ids = sorted(train_split.qrels)
    limit = config.max_train_queries
    if limit is not None and limit < len(query_ids):
        query_ids = sorted(random.Random(config.seed).sample(query_ids, limit))
    return query_ids


MODELS_FILE = "models.json"


def model_fingerprints(config: ExperimentConfig) -> dict[str, str]:
    """Every local model folder the run uses (ensemble members, the re-rankers' base) by a hash of its files. Stage
    keys name models by path; this catches a folder whose model was replaced in place (a hub id is not checked)."""
    paths = [m["model"] for m in config.members if "model" in m] + [config.training_config().base_model]
    return {path: folder_fingerprint(path) for path in dict.fromkeys(paths) if Path(path).expanduser().is_dir()}


def ensemble_settings(config: ExperimentConfig) -> dict[str, Any]:
    return {"members": config.members, "combine": config.combine, "meta_fields": config.meta_fields,
            "separator": config.separator}


def index_key(config: ExperimentConfig, data_key: str) -> str:
    return stage_key(data=data_key, ensemble=ensemble_settings(config), store=config.store)


def lexical_index_key(config: ExperimentConfig, data_key: str) -> str | None:
    if config.lexical_section is None:
        return None
    return stage_key(data=data_key, meta_fields=config.meta_fields, separator=config.separator,
                     language=config.lexical_section.language)


def _graded(config: ExperimentConfig) -> dict[str, Any]:
    """``min_relevance`` where it is not the default, so that the keys of runs made before it existed still hold."""
    return {"min_relevance": config.min_relevance} if config.min_relevance != 1 else {}


def first_stage_query_ids(config: ExperimentConfig, name: str, split) -> list[str]:
    """The queries of split ``name`` the first stage retrieves for: every test query; of the training queries, those
    within the budget (mining, validation and the hybrid weight's tuning sample all draw from them)."""
    return training_query_ids(config, split) if name == "train" else sorted(split.qrels)


def first_stage_key(config: ExperimentConfig, index: str, lexical: str | None, splits: dict[str, Any]) -> str:
    return stage_key(index=index, lexical=lexical, retrieve_k=config.retrieve_k, splits=sorted(splits),
                     queries={name: first_stage_query_ids(config, name, split) for name, split in splits.items()},
                     **_graded(config))


def tuning_query_ids(config: ExperimentConfig, train_split) -> list[str]:
    """The training queries ``lexical.weight: auto`` is chosen on: those within the budget, or a seeded sample of
    ``lexical.tuning_queries`` of them."""
    query_ids = training_query_ids(config, train_split)
    size = config.lexical_section.tuning_queries if config.lexical_section is not None else None
    if size is not None and size < len(query_ids):
        query_ids = sorted(random.Random(config.seed).sample(query_ids, size))
    return query_ids


def hybrid_key(config: ExperimentConfig, first_stage: str, train_split) -> str:
    lexical = config.lexical_section
    return stage_key(first_stage=first_stage, lexical=lexical is not None,
                     weight=lexical.weight if lexical is not None else "auto",
                     budget=tuning_query_ids(config, train_split))


def mine_key(config: ExperimentConfig, index: str, name: str, train_split) -> str:
    strategy, overrides = config.mining_for(name)
    # Only the options a variant sets differ from the mining section, so a built-in strategy's key does not
    # depend on which variants the config also defines.
    query_ids = training_query_ids(config, train_split)
    mining = {"seed": config.seed, **config.mining, **overrides}
    # Runs recorded before pairs were filled from beyond the window kept none: fill off keeps their keys, and the
    # default (on) is keyed, so that those runs are mined again.
    if mining.get("fill_beyond_window", True):
        mining["fill_beyond_window"] = True
    else:
        del mining["fill_beyond_window"]
    return stage_key(index=index, mining=mining, strategy=strategy,
                     queries=query_ids, **_graded(config), **_positives_limit(config, name, train_split, query_ids))


def _positives_limit(config: ExperimentConfig, name: str, train_split, query_ids: list[str]) -> dict[str, Any]:
    """The default ``max_positives_per_query`` where it leaves positives out (a query has more; set in the config,
    it is keyed with the mining section): keys of runs it does not touch stay as they were before it existed."""
    _, overrides = config.mining_for(name)
    if "max_positives_per_query" in {**config.mining, **overrides}:
        return {}
    limit = config.mining_config(name).max_positives_per_query
    if limit is None or all(sum(g >= config.min_relevance for g in train_split.qrels[q].values()) <= limit
                            for q in query_ids):
        return {}
    return {"positives_limit": limit}


def training_options(config: ExperimentConfig, train_split=None) -> dict[str, Any]:
    """Every training option with its default filled in, so that a changed default retrains too (the stage sets
    the output folder, strategy and description itself; the seed is keyed apart). Options added since runs were
    recorded are named only where they change something (``KEYED_WHEN_SET``): ``max_validation_queries`` where
    it cuts the held-out queries of ``train_split``'s training queries, the others when set."""
    # The loss auto as what it trains with.
    resolved = resolve_loss(TrainingConfig(output_dir="", **config.training), teacher_scores=True)
    defaults = asdict(TrainingConfig(base_model="", output_dir=""))
    options = {k: v for k, v in asdict(resolved).items()
               if k != "output_dir" and not (k in KEYED_WHEN_SET and v == defaults[k])}
    options.pop("max_validation_queries", None)
    if resolved.loss not in TEACHER_LOSSES:  # the teacher's options change nothing for the other losses
        options.pop("teacher_scale", None), options.pop("label_weight", None)
    limit = resolved.max_validation_queries
    if limit is not None and train_split is not None and \
            round(len(training_query_ids(config, train_split)) * resolved.validation_fraction) > limit:
        options["max_validation_queries"] = limit
    head = resolve_head(options["base_model"], options["head"])
    if head != "mean":  # what head "auto" became; named only when it is not the default mean head
        options["resolved_head"] = head
    return options


def budget_key(config: ExperimentConfig, train_split) -> str | None:
    """A time budget's step count depends on what a step is (every training option); none without a budget."""
    if config.training_config().max_minutes is None:
        return None
    return stage_key(budget=training_options(config, train_split))


def train_key(config: ExperimentConfig, mine: str, hybrid: str, train_split, budget: str | None = None) -> str:
    # The budget is named only when there is one, so that runs recorded without keep their keys.
    steps = {"budget": budget} if budget is not None else {}
    return stage_key(mine=mine, training=training_options(config, train_split), seed=config.effective_training_seed,
                     validation=hybrid,
                     rerank_k=config.rerank_k, validation_split=VALIDATION_SPLIT, **steps)


def rerank_key(config: ExperimentConfig, hybrid: str, train: str) -> str:
    # The backend is named only when one is set, so that runs recorded on torch keep their keys.
    backend = {"backend": config.rerank_backend} if config.rerank_backend is not None else {}
    return stage_key(first_stage=hybrid, train=train, rerank_k=config.rerank_k, **backend)

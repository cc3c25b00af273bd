"""The plan of an experiment before any heavy work: what it will count (documents, queries, pairs, steps per
strategy) and how long each stage should take on this machine, from a short measured warm-up of the real models.

Counts are exact where they follow from the data and the config (pairs assume every positive finds its
negatives; the mining report counts those that did not). Times are the warm-up's rates times the counts: the
models encode a sample of the documents and queries, the re-ranker runs a few real training steps and scores a
sample of pairs (``rates``, which also counts what API members will be sent). Stages already done in the run
folder are planned at 0.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.keys import training_query_ids
from haystack_hardneg.experiment.rates import api_work, measured_rates
from haystack_hardneg.experiment.stages import ENSEMBLE
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.train.config import TrainingConfig
from haystack_hardneg.train.trainer import evaluation_schedule
from haystack_hardneg.train.validation import held_out_queries

PLAN_ESTIMATES = "plan_estimates.json"  # in a run folder: each stage's estimate, made before it ran
# ranx compiles its metrics (numba) at their first use in a process; measured on 2 CPU cores: 30-38 s with an empty
# cache, as a new run folder has (its cache lives there), about 3 s with a filled one.
METRICS_COMPILE_SECONDS = {"empty cache": 35.0, "filled cache": 3.0}


def read_estimates(out: Path) -> dict[str, float]:
    """Each stage's estimate recorded in the run folder ``out`` (the report sets it beside the measured time)."""
    path = Path(out) / PLAN_ESTIMATES
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def record_estimates(out: Path, estimates: dict[str, float]) -> None:
    """Add ``estimates`` to those recorded in ``out``: a stage keeps the estimate made by the run that computed it."""
    if estimates:
        atomic_write_text(Path(out) / PLAN_ESTIMATES, json.dumps({**read_estimates(out), **estimates}, indent=2))


def training_counts(config: ExperimentConfig, train_split, strategy: str) -> dict[str, int]:
    """What one strategy's mining and training will handle: pairs, training rows, held-out queries, steps and
    validation passes, as the mining job and the trainer count them (every positive finding its negatives)."""
    limit = config.mining_config(strategy).max_positives_per_query or math.inf
    rows: dict[str, int] = {}
    for q in training_query_ids(config, train_split):
        text = train_split.queries[q]
        positives = sum(g >= config.min_relevance for g in train_split.qrels[q].values())
        rows[text] = rows.get(text, 0) + min(positives, limit)
    return _training_steps(config, strategy, rows)


def mined_counts(config: ExperimentConfig, strategy: str, triplets: Path) -> dict[str, int]:
    """``training_counts`` from the rows mining wrote: exact, pairs left without negatives left out."""
    rows = Counter(json.loads(line)["query"] for line in triplets.read_text(encoding="utf-8").splitlines() if line)
    return _training_steps(config, strategy, dict(rows))


def _training_steps(config: ExperimentConfig, strategy: str, pairs: dict[str, int]) -> dict[str, int]:
    """Rows, held-out queries, steps and validations of a training on ``pairs`` rows per query text."""
    mining, training = config.mining_config(strategy), _training(config)
    held_out = (held_out_queries(set(pairs), training.validation_fraction, training.seed,
                                 training.max_validation_queries) if training.validation_fraction > 0 else set())
    rows = sum(n for q, n in pairs.items() if q not in held_out)
    if training.loss == "bce":
        rows *= 1 + mining.num_negatives  # one labelled pair per text of a row
    steps_per_epoch = max(1, math.ceil(rows / training.batch_size))
    steps, _, evaluations = evaluation_schedule(training, steps_per_epoch)
    # Scoring passes over the held-out candidates: the trainer's evaluations and the fusion sweep at the end.
    passes = evaluations + 1
    return {"pairs": int(sum(pairs.values())), "train_rows": int(rows), "validation_queries": len(held_out),
            "steps": int(steps), "validations": passes if held_out else 0}


def _training(config: ExperimentConfig) -> TrainingConfig:
    return config.training_config()


def counts(config: ExperimentConfig, splits: dict[str, Any]) -> dict[str, Any]:
    train_ids = training_query_ids(config, splits["train"])
    return {
        "documents": len(splits["test"].corpus),
        "test_queries": len(splits["test"].queries),
        "train_queries": len(splits["train"].queries),
        "train_queries_used": len(train_ids),
        "strategies": {name: training_counts(config, splits["train"], name) for name in config.strategies},
    }


def index_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float]) -> float:
    return numbers["documents"] * rates["seconds_per_document"]


def lexical_index_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float]) -> float:
    return numbers["documents"] * 2e-4 if config.lexical_section is not None else 0.0


def _queries(numbers: dict[str, Any]) -> int:
    """The queries the first stage retrieves for: the test queries and the training queries within the budget."""
    return numbers["test_queries"] + numbers["train_queries_used"]


def first_stage_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float]) -> float:
    # Exact search in Qdrant's local mode: a product over every stored vector per query, plus the answer's payload.
    search = numbers["documents"] * rates["dimension"] * 4 / 2e9 + config.retrieve_k * 2e-5
    return _queries(numbers) * (rates["seconds_per_query"] + search)


def hybrid_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float]) -> float:
    return _queries(numbers) * config.retrieve_k * 5e-6 * 11


def mine_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float], strategy: str) -> float:
    # Each training query against every document vector, plus clustering for ensemble_cluster.
    return (numbers["train_queries_used"] * numbers["documents"] * rates["dimension"] * 4 / 2e9
            + numbers["strategies"][strategy]["pairs"] * 1e-3)


def _scored_per_validation(config: ExperimentConfig, count: dict[str, int], rates: dict[str, float]) -> float:
    return count["validation_queries"] * config.rerank_k * rates["seconds_per_pair"]


def train_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float], strategy: str) -> float:
    count = numbers["strategies"][strategy]
    seconds = count["steps"] * rates["seconds_per_step"] + count["validations"] * _scored_per_validation(config, count,
                                                                                                         rates)
    if _training(config).max_minutes is not None:
        seconds = min(seconds, 60 * _training(config).max_minutes + _scored_per_validation(config, count, rates))
    return seconds


def rerank_seconds(config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float], strategy: str) -> float:
    count = numbers["strategies"][strategy]
    return (numbers["test_queries"] + count["validation_queries"]) * config.rerank_k * rates["seconds_per_pair"]


def estimate(table: dict[str, Any], config: ExperimentConfig, numbers: dict[str, Any], rates: dict[str, float],
             done: set[str] = frozenset()) -> dict[str, float]:
    """Seconds per stage of ``table`` (experiment/table.py): the warm-up's rates times the counts (0 for stages in
    ``done``). The first stage left to run that measures anything also pays for compiling the metrics."""
    stages = {name: stage.estimate(config, numbers, rates) for name, stage in table.items()}
    first_to_measure = next((name for name, stage in table.items() if stage.measures(config) and name not in done),
                            None)
    if first_to_measure is not None:
        stages[first_to_measure] += _metrics_compile_seconds()
    return {stage: 0.0 if stage in done else round(seconds, 1) for stage, seconds in stages.items()}


def _metrics_compile_seconds() -> float:
    folder = os.environ.get("NUMBA_CACHE_DIR")
    filled = folder is not None and any(Path(folder).rglob("*.nbi"))
    return METRICS_COMPILE_SECONDS["filled cache" if filled else "empty cache"]


def make_plan(table: dict[str, Any], config: ExperimentConfig, splits: dict[str, Any], done: set[str] = frozenset(), *,
              measured: bool = True) -> dict[str, Any]:
    """The counts, and with ``measured`` the warm-up's rates and each stage's estimated seconds; the ensemble's
    models are loaded for the warm-up only where a stage left to run uses them."""
    plan: dict[str, Any] = {"counts": counts(config, splits), "done": sorted(done)}
    ensemble = any(ENSEMBLE in stage.uses for name, stage in table.items() if name not in done)
    if ensemble:
        plan["api"] = api_work(config, splits)
    if measured:
        plan["rates"] = measured_rates(config, splits, ensemble=ensemble)
        plan["estimate_seconds"] = estimate(table, config, plan["counts"], plan["rates"], done)
    return plan


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: dict[str, Any]) -> str:
    numbers = plan["counts"]
    lines = [f"Plan: {numbers['documents']} documents, {numbers['test_queries']} test queries, "
             f"{numbers['train_queries']} training queries ({numbers['train_queries_used']} used for training).",
             "", "| strategy | pairs | training rows | held-out queries | steps | validations |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {n['pairs']} | {n['train_rows']} | {n['validation_queries']} | {n['steps']} | "
              f"{n['validations']} |" for name, n in numbers["strategies"].items()]
    if plan.get("api"):
        lines += ["", "| member (API or server) | texts to send (not cached) | about tokens |", "|---|---|---|"]
        lines += [f"| {name} | {n['texts']:,} | {n['tokens']:,} |" for name, n in plan["api"].items()]
    if "estimate_seconds" in plan:
        estimates = plan["estimate_seconds"]
        lines += ["", "| stage | estimated time |", "|---|---|"]
        lines += [f"| {stage} | {'done' if stage in plan['done'] else _duration(seconds)} |"
                  for stage, seconds in estimates.items()]
        lines += ["", f"About {_duration(sum(estimates.values()))} in all on this machine (from a warm-up of "
                      f"{plan['rates']['seconds_per_step']:.2f} s per training step and "
                      f"{1000 * plan['rates']['seconds_per_pair']:.1f} ms per scored pair)."]
    return "\n".join(lines)

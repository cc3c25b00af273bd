"""The computes of each strategy's re-ranker: its training and its scores of the test and validation candidates
(table.py declares when each runs, under which key, writing which files)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack_hardneg.experiment.folder import RunFolder, strategy_stage
from haystack_hardneg.experiment.stages import StageRun, file_fingerprint
from haystack_hardneg.export.job import describe, export_model
from haystack_hardneg.files import atomic_directory, atomic_write_text, read_jsonl
from haystack_hardneg.mine.triplets import load_triplets
from haystack_hardneg.rank.job import latency, rerank_records
from haystack_hardneg.rank.ranker import CrossEncoderRanker
from haystack_hardneg.train.config import TEACHER_LOSSES
from haystack_hardneg.train.trainer import train_cross_encoder


def budget(run: StageRun) -> None:
    """``training.max_minutes`` as one step count for every strategy: the minutes over the seconds a training step
    took in this run's warm-up (``plan.json``; measured again when the run has none). A deadline per training
    would give each strategy the steps its own run happened to reach on a loaded machine: not like for like."""
    from haystack_hardneg.experiment.rates import measured_rates
    from haystack_hardneg.machine import cpu

    minutes = run.config.training_config().max_minutes
    plan = run.folder / RunFolder.plan
    rates = json.loads(plan.read_text(encoding="utf-8")).get("rates") if plan.is_file() else None
    seconds = (rates or {}).get("seconds_per_step") or measured_rates(run.config, run.splits, ensemble=False)[
        "seconds_per_step"]
    steps = max(1, int(60 * minutes // seconds))
    if run.progress_bar:
        print(f"Time budget: {minutes} min at {seconds:.2f} s per step is {steps} steps for every strategy.",
              flush=True)
    atomic_write_text(run.folder / RunFolder.budget, json.dumps(
        {"max_minutes": minutes, "seconds_per_step": seconds, "steps": steps, "cpu": cpu()}, indent=2))


def _budgeted(run: StageRun, config):
    """The training settings with the run's time budget as its step count (and no deadline of its own)."""
    budget_file = run.folder / RunFolder.budget
    if config.max_minutes is None or not budget_file.is_file():
        return config
    steps = json.loads(budget_file.read_text(encoding="utf-8"))["steps"]
    return replace(config, max_steps=min(steps, config.max_steps or steps), max_minutes=None)


def train(run: StageRun, strategy: str) -> None:
    """One cross-encoder on the strategy's triplets, validated on its held-out queries' top rerank_k from the
    experiment's own first stage (the candidates it will re-rank at test time)."""
    c, key = run.config, run.keys[strategy_stage("train", strategy)]
    folder = run.folder / RunFolder.trained(strategy)
    twin = _trained_twin(run, strategy)
    if twin is not None:
        return _reuse_training(run, twin, strategy)
    config = _budgeted(run, c.training_config(output_dir=str(folder), strategy=strategy,
                                              data_description=f"{Path(c.data).name} {c.train_split} triplets"))
    # An interrupted run of the same stage continues from its last checkpoint.
    resume = (folder / "checkpoints").is_dir() and (folder / "stage_key").is_file() and \
        (folder / "stage_key").read_text() == key
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "stage_key", key)
    candidates = [dict(r, candidates=r["candidates"][: c.rerank_k])
                  for r in read_jsonl(run.folder / RunFolder.candidates("train"))]
    triplets = load_triplets(run.folder / RunFolder.mined(strategy, "triplets.jsonl"),
                             teacher_scores=config.loss in TEACHER_LOSSES)
    train_cross_encoder(triplets, config, resume=resume, progress_bar=run.progress_bar, candidates=candidates)


def _trained_twin(run: StageRun, strategy: str) -> str | None:
    """An earlier strategy of this run whose triplets are byte for byte this one's and whose re-ranker is
    here. Every strategy trains with the same settings and seed, so the same rows give the same re-ranker
    (a one-member ensemble, say, mines the same negatives for ``dense`` and ``ensemble``)."""
    strategies, triplets = run.config.strategies, lambda s: run.folder / RunFolder.mined(s, "triplets.jsonl")
    own = file_fingerprint(triplets(strategy))
    for other in strategies[: strategies.index(strategy)]:
        trained = run.folder / RunFolder.trained(other)
        if (trained / "model").is_dir() and (trained / "training_report.json").is_file() and \
                file_fingerprint(triplets(other)) == own:
            return other
    return None


def _reuse_training(run: StageRun, twin: str, strategy: str) -> None:
    """``twin``'s re-ranker and training report as ``strategy``'s, the report saying so."""
    source, folder = run.folder / RunFolder.trained(twin), run.folder / RunFolder.trained(strategy)
    if run.progress_bar:
        print(f"train/{strategy}: the same triplets as {twin}; its re-ranker is reused, not trained again.",
              flush=True)
    with atomic_directory(folder / "model") as staging:
        shutil.copytree(source / "model", staging, dirs_exist_ok=True)
    report = json.loads((source / "training_report.json").read_text(encoding="utf-8"))
    report["same_triplets_as"] = twin
    atomic_write_text(folder / "training_report.json", json.dumps(report, indent=2))
    if (source / "training_curves.png").is_file():
        shutil.copyfile(source / "training_curves.png", folder / "training_curves.png")


def rerank(run: StageRun, strategy: str) -> None:
    """The re-ranker's scores for the top rerank_k of every test query and of its held-out (validation)
    training queries: the fusion weight with the first stage is chosen on the latter, then applied to the
    former (see report.py)."""
    c = run.config
    training = json.loads((run.folder / RunFolder.trained(strategy, "training_report.json")).read_text())
    twin_scores = run.folder / RunFolder.scores(training.get("same_triplets_as"))
    if "same_triplets_as" in training and twin_scores.is_file():  # the same re-ranker: the same scores
        atomic_write_text(run.folder / RunFolder.scores(strategy), twin_scores.read_text(encoding="utf-8"))
        return
    ranker, output = _serving_ranker(run, strategy)
    ranker.warm_up()
    # The queries the trainer held out, as its report records them.
    held_out = set(training["validation_query_texts"])
    test = read_jsonl(run.folder / RunFolder.candidates("test"))
    validation = [r for r in read_jsonl(run.folder / RunFolder.candidates("train")) if r["query"] in held_out]
    output["test"], seconds = rerank_records(ranker, test, c.rerank_k, desc=f"Re-ranking test ({strategy})",
                                             progress_bar=run.progress_bar)
    output.update(latency(seconds))
    output["validation"], _ = rerank_records(ranker, validation, c.rerank_k, progress_bar=run.progress_bar,
                                             desc=f"Re-ranking validation ({strategy})")
    atomic_write_text(run.folder / RunFolder.scores(strategy), json.dumps(output))


def _serving_ranker(run: StageRun, strategy: str) -> tuple[CrossEncoderRanker, dict[str, Any]]:
    """The re-ranker of ``strategy`` on the configured backend (exported and checked first when it is not
    torch), and what the re-ranking output records of it."""
    model = str(run.folder / RunFolder.trained(strategy, "model"))
    export = run.config.export_config(model)
    if export is None:
        return CrossEncoderRanker(model=model, fusion_alpha=None, batch_size=32, backend="torch"), {
            "backend": "torch"}
    record = export_model(export, log=lambda message: print(f"rerank/{strategy}: {message}", flush=True))
    print(f"rerank/{strategy}: {describe(record)}", flush=True)
    ranker = CrossEncoderRanker(model=model, fusion_alpha=None, batch_size=32, backend=export.backend,
                                model_kwargs={"file_name": record["file_name"]})
    return ranker, {"backend": export.backend, "file_name": record["file_name"], "export": record}

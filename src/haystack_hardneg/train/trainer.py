"""The training job: a cross-encoder fine-tuned on mined triplets with sentence-transformers'
CrossEncoderTrainer (no Haystack here).

A run holds out a validation slice of its training queries and keeps the best checkpoint by it
(``train.validation``), resumes from its checkpoints (``train.manifest``), and writes the model with its fusion
weight (``scoring.settings``) and model card, the training report and its curves (``train.card``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from haystack_hardneg.embed.encoder import check_model_source, looks_like_path
from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_directory, atomic_write_text, jsonl_text
from haystack_hardneg.machine import bf16_support
from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.mine.triplets import negative_columns
from haystack_hardneg.scoring.settings import CALIBRATION_PAIRS_FILE, VALIDATION_CANDIDATES_FILE, write_ranker_settings
from haystack_hardneg.train.card import append_model_card, plot_curves
from haystack_hardneg.train.config import TEACHER_LOSSES, TrainingConfig, resolve_loss
from haystack_hardneg.train.heads import build_cross_encoder, head_parameters, keep_layers, resolve_head
from haystack_hardneg.train.losses import build_loss, to_labelled_pairs
from haystack_hardneg.train.manifest import checkpoint_to_resume, run_manifest, save_or_check_manifest
from haystack_hardneg.train.teacher import candidate_groups, with_teacher_scores
from haystack_hardneg.train.validation import fusion_sweep, split_by_query, validation_evaluator, validation_on

logger = logging.getLogger(__name__)

# Training pairs kept with the model for an int8 export's calibration (a few hundred is what NNCF needs).
CALIBRATION_SAMPLE = 512


def train_cross_encoder(triplets, config: TrainingConfig, *, resume: bool = False, progress_bar: bool = True,
                        callbacks: list | None = None, candidates: list[dict[str, Any]] | None = None) -> dict:
    """Train on a Dataset of (query, positive, negative_1..n) rows; returns the training report.

    ``callbacks`` are transformers ``TrainerCallback``s (e.g. early stopping) passed to the trainer.
    ``candidates``: first-stage candidate records (as in ``candidates.jsonl``), instead of
    ``config.validation_candidates``.

    The best model (by validation nDCG@10 when there is a validation slice) is saved as a standard CrossEncoder
    folder in ``output_dir/model``.
    """
    import torch


    config = _resolved_loss(triplets, config)
    _check_triplets(triplets)
    check_model_source(config.base_model)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    if candidates is None and config.validation_candidates:
        candidates = load_candidates(config.validation_candidates)
    if config.distill_candidates:
        triplets = _with_candidate_groups(triplets, candidates, config)
    if config.teacher_model:
        check_model_source(config.teacher_model)
        triplets = with_teacher_scores(triplets, config.teacher_model, max_length=config.max_length,
                                       progress_bar=progress_bar)
    columns = _check_triplets(triplets) + _teacher_column(triplets, config)
    torch.manual_seed(config.seed)  # a new head's initial weights
    base = str(Path(config.base_model).expanduser()) if looks_like_path(config.base_model) else config.base_model
    head = resolve_head(base, config.head)
    model = build_cross_encoder(base, head, max_length=config.max_length)
    if config.keep_layers:
        kept = keep_layers(model, config.keep_layers)
        logger.info("Student: layers %s of %s kept (%d of %d).", [i + 1 for i in kept], base, len(kept),
                    max(kept) + 1)

    triplets = triplets.select_columns(columns)
    train_rows, validation_rows = (
        split_by_query(triplets, config.validation_fraction, config.seed, config.max_validation_queries)
        if config.validation_fraction > 0 else (triplets, triplets.select([])))
    evaluator, held_out_candidates = validation_evaluator(validation_rows, candidates, progress_bar=progress_bar)
    # A new head starts from random weights and needs a far larger rate than the pre-trained encoder; a
    # re-ranker's own head is trained already.
    head_lr = config.head_lr if head != "pretrained" and config.head_lr is not None else config.encoder_lr
    trainer = build_trainer(model, train_rows, evaluator, config, head_lr, progress_bar=progress_bar,
                            callbacks=callbacks)
    resume_from = checkpoint_to_resume(output / "checkpoints", resume=resume, base=base, head=head)
    save_or_check_manifest(output / "checkpoints", run_manifest(config, base, head, triplets, held_out_candidates),
                           resuming=resume_from is not None)
    trainer.train(resume_from_checkpoint=resume_from)

    # One scoring pass of the held-out candidates at the end: the fusion sweep gives the re-ranker's own figures.
    fusion = (fusion_sweep(model, held_out_candidates, min_queries=config.min_validation_queries,
                           progress_bar=progress_bar) if held_out_candidates else None)
    validation = ({f"validation_{k}": v for k, v in fusion["reranker_alone"].items()} if fusion
                  else evaluator(model) if evaluator else {})
    if fusion and fusion["fallback"]:
        logger.warning("The re-ranker did not beat its first stage on validation: %s. Try more training queries "
                       "(or a larger validation_fraction), another negative strategy or more steps.",
                       fusion["fallback"])
    held_out = sorted(set(validation_rows["query"])) if len(validation_rows) else []
    report = _report(config, trainer.state, head=head, head_lr=head_lr, train_rows=len(train_rows), held_out=held_out,
                     validation_on=validation_on(evaluator, held_out_candidates), validation=validation, fusion=fusion,
                     resumed_from=resume_from, precision_run="bf16" if trainer.args.bf16 else "fp32")
    _write_outputs(output, model, report, held_out_candidates, calibration_sample(train_rows, config.seed))
    return report


def _check_triplets(triplets) -> list[str]:
    """The text columns of ``triplets``, after refusing a set that cannot be trained on."""
    if len(triplets) == 0:
        raise ValueError("The triplet set is empty: nothing to train on.")
    missing = [c for c in ("query", "positive", "negative_1") if c not in triplets.column_names]
    if missing:
        raise ValueError(f"Triplets need the columns query, positive, negative_1..n; missing {missing}.")
    text_columns = ["query", "positive", *negative_columns(triplets.column_names)]
    empty = [i for i, row in enumerate(triplets) if any(not str(row[c] or "").strip() for c in text_columns)]
    if empty:
        raise ValueError(f"{len(empty)} triplet row(s) have an empty text, e.g. rows {empty[:5]}; remove them first.")
    return text_columns


def _resolved_loss(triplets, config: TrainingConfig) -> TrainingConfig:
    """The loss ``auto`` stands for with these triplets, said in the log (the report and model card name it)."""
    resolved = resolve_loss(config, "scores" in triplets.column_names or config.teacher_model is not None)
    if config.loss == "auto":
        teacher = "the teacher model scores each row" if config.teacher_model else \
            "the triplets carry the mining ensemble's scores"
        logger.info("Loss auto: %s (%s).", resolved.loss, teacher if resolved.loss in TEACHER_LOSSES else
                    "these triplets carry no teacher scores: no matching provenance.jsonl from the miner beside them")
    return resolved


def _teacher_column(triplets, config: TrainingConfig) -> list[str]:
    """``["scores"]`` for a loss that learns from the teacher (refused without them), else nothing."""
    if config.loss not in TEACHER_LOSSES:
        return []
    if "scores" not in triplets.column_names:
        raise ValueError(f"The {config.loss} loss learns from the mining ensemble's scores, and these triplets have "
                         f"none: train on a triplets file with the miner's provenance.jsonl beside it (or rows with a "
                         f"'scores' list: positive, then each negative), or choose the triplet loss (an "
                         f"experiment's loss auto is listnet).")
    width = 1 + len(negative_columns(triplets.column_names))
    wrong = [i for i, scores in enumerate(triplets["scores"])
             if not isinstance(scores, list) or len(scores) != width or any(s is None for s in scores)]
    if wrong:
        raise ValueError(f"{len(wrong)} row(s) have no score for each of their {width} documents (positive, then each "
                         f"negative), e.g. rows {wrong[:5]}.")
    return ["scores"]


def _param_groups(model, encoder_lr: float, head_lr: float) -> list[dict[str, Any]]:
    encoder, head = head_parameters(model)
    groups = [{"params": encoder, "lr": encoder_lr}]
    if head:
        groups.append({"params": head, "lr": head_lr})
    return groups


def build_trainer(model, train_rows, evaluator, config: TrainingConfig, head_lr: float, *, progress_bar: bool,
             callbacks: list | None):
    """sentence-transformers' CrossEncoderTrainer for the run: an evaluation and a checkpoint every
    ``eval_steps`` (an epoch by default), the best checkpoint by validation nDCG@10 loaded at the end, and the
    encoder and a new head at their own learning rates."""
    import torch

    require("datasets", "Training")
    require("accelerate", "Training")
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    train_data = to_labelled_pairs(train_rows) if config.loss == "bce" else train_rows
    # A cross-encoder teacher's logits are on the student's scale already; the ensemble's cosines are not.
    scale = 1.0 if config.teacher_model else config.teacher_scale
    loss = build_loss(config.loss, model, margin=config.margin, teacher_scale=scale,
                      label_weight=config.label_weight)
    steps_per_epoch = max(1, -(-len(train_data) // config.batch_size))
    total_steps, eval_steps, evaluations = evaluation_schedule(config, steps_per_epoch)
    if not evaluations:
        evaluator = None
    metric = "eval_validation_ndcg@10"
    args = CrossEncoderTrainingArguments(
        output_dir=str(Path(config.output_dir) / "checkpoints"),
        num_train_epochs=config.epochs,
        # transformers lets max_steps override the epochs; here it only ever cuts them short.
        max_steps=total_steps if config.max_steps is not None else -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.encoder_lr,
        warmup_steps=float(config.warmup_ratio),  # a float below 1 is a share of all steps (transformers 5)
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=eval_steps if evaluator else None,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=metric if evaluator else None,
        greater_is_better=True,
        logging_steps=max(1, min(10, steps_per_epoch // 4)),
        report_to="none",
        disable_tqdm=not progress_bar,
        use_cpu=not torch.cuda.is_available(),
        bf16=usable_precision(config.precision) == "bf16",
    )
    optimizer = torch.optim.AdamW(_param_groups(model, config.encoder_lr, head_lr))
    callbacks = list(callbacks or [])
    if config.max_minutes is not None:
        callbacks.append(time_budget(config.max_minutes))
    return CrossEncoderTrainer(model=model, args=args, train_dataset=train_data, loss=loss, evaluator=evaluator,
                               optimizers=(optimizer, None), callbacks=callbacks)


def usable_precision(precision: str) -> str:
    """``precision``, or fp32 (with a WARNING naming what is missing) for bf16 where it would be slow: a CPU
    without bfloat16 instructions (torch emulates it there, several times slower than fp32) or a GPU without
    bfloat16 support."""
    import torch

    if precision != "bf16":
        return precision
    lacking, where = bf16_support("cuda" if torch.cuda.is_available() else "cpu")
    if lacking:
        logger.warning("precision bf16 is refused on %s: it has no %s, and bfloat16 runs several times slower than "
                       "float32 without it; training in fp32 (the saved model is float32 either way).", where,
                       lacking)
        return "fp32"
    return precision


def evaluation_schedule(config: TrainingConfig, steps_per_epoch: int) -> tuple[int, int, int]:
    """The run's steps, the steps between evaluations and checkpoints (at least one before the end, however short
    the run), and how often the trainer validates (given a validation slice): every ``eval_steps`` and at the last
    step. None when that would be once, at the end, with no deadline to stop at: one evaluation chooses no
    checkpoint, and the fusion sweep after training scores the final model anyway."""
    total_steps = total_training_steps(config, steps_per_epoch)
    eval_steps = min(config.eval_steps or steps_per_epoch, total_steps)
    evaluations = math.ceil(total_steps / eval_steps)
    return total_steps, eval_steps, evaluations if evaluations > 1 or config.max_minutes is not None else 0


def total_training_steps(config: TrainingConfig, steps_per_epoch: int) -> int:
    """The epochs' steps, at most ``max_steps``."""
    steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    return steps if config.max_steps is None else min(steps, config.max_steps)


def time_budget(minutes: float):
    """A callback that ends training once ``minutes`` have passed, with an evaluation and a checkpoint at that
    step, so that the best checkpoint so far is what the run keeps."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self) -> None:
            self.deadline = time.monotonic() + 60 * minutes

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() >= self.deadline and not control.should_training_stop:
                logger.warning("Time budget of %s minute(s) spent at step %d: validating, saving and stopping.",
                               minutes, state.global_step)
                control.should_training_stop = True
                control.should_evaluate = args.eval_strategy != "no"
                control.should_save = True
            return control

    return TimeBudget()


def _with_candidate_groups(triplets, candidates: list[dict[str, Any]] | None, config: TrainingConfig):
    """The rows and, after them, groups of each training query's first-stage top ``distill_candidates``
    (``candidate_groups``); a held-out query's groups are held out with its rows, the split being by query."""
    from datasets import Dataset, concatenate_datasets

    if not config.teacher_model:
        raise ValueError("distill_candidates learns a teacher's scores: give teacher_model (or distill_candidates 0).")
    if not candidates:
        raise ValueError("distill_candidates learns the teacher's scores of first-stage candidates: give "
                         "validation_candidates (train --candidates), or set distill_candidates to 0.")
    negatives = negative_columns(triplets.column_names)
    groups = candidate_groups(candidates, negatives, config.distill_candidates, config.seed)
    logger.info("Distillation: %d mined rows and %d groups of the first stage's top %d.", len(triplets), len(groups),
                config.distill_candidates)
    rows = triplets.select_columns(["query", "positive", *negatives])
    return concatenate_datasets([rows, Dataset.from_list(groups, features=rows.features)]) if groups else rows


def _report(config: TrainingConfig, state, *, head: str, head_lr: float, train_rows: int, held_out: list[str],
            validation_on: str, validation: dict, fusion: dict[str, Any] | None, resumed_from: str | None,
            precision_run: str) -> dict:
    """The training report (``training_report.json``): what was trained how, and what validation measured.
    ``precision_run`` is the precision the run had: bf16 asked is fp32 where this machine refused it."""
    return {
        "validation_on": validation_on,
        "fusion": fusion,
        "config": asdict(config),
        "head": head,
        "head_lr": head_lr,
        "train_rows": train_rows,
        "validation_queries": len(held_out),
        "validation_query_texts": held_out,
        "steps": state.global_step,
        "best_checkpoint": state.best_model_checkpoint,
        "validation": {k: float(v) for k, v in validation.items()},
        "history": state.log_history,
        "resumed_from": resumed_from,
        "precision_run": precision_run,
    }


def calibration_sample(rows, seed: int, size: int = CALIBRATION_SAMPLE) -> list[dict[str, str]]:
    """``size`` (query, text) pairs drawn at random from the training rows' positives and negatives."""
    import random

    columns = ["positive", *negative_columns(rows.column_names)]
    picks = random.Random(seed).sample(range(len(rows) * len(columns)), min(size, len(rows) * len(columns)))
    sample = []
    for i in picks:
        row = rows[i // len(columns)]
        sample.append({"query": row["query"], "text": row[columns[i % len(columns)]]})
    return sample


def _write_outputs(output: Path, model, report: dict, held_out_candidates: list[dict[str, Any]],
                   calibration: list[dict[str, str]]) -> None:
    """The model with its fusion weight, validation candidates, calibration pairs and card (``output/model``), the
    report and the training curves."""
    # Built aside and swapped in whole: a retrained model never inherits an earlier run's fusion weight, and an
    # interrupted save leaves the previous model as it was.
    with atomic_directory(output / "model") as model_dir:
        model.save(str(model_dir))
        if report["fusion"] is not None:
            write_ranker_settings(model_dir, report["fusion"], chosen_on=report["validation_on"],
                                  first_stage=report["config"]["validation_candidates"])
        if held_out_candidates:  # what an export of this model is checked on
            atomic_write_text(model_dir / VALIDATION_CANDIDATES_FILE, jsonl_text(held_out_candidates))
        if calibration:
            atomic_write_text(model_dir / CALIBRATION_PAIRS_FILE, jsonl_text(calibration))
        append_model_card(model_dir, report)
    atomic_write_text(output / "training_report.json", json.dumps(report, indent=2, default=str))
    plot_curves(report["history"], output / "training_curves.png")

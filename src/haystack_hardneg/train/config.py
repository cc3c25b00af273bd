"""How to train: every training option, declared once (type, default, choices, help).

``TripletTrainer(training=...)``, the ``train`` command's flags and an experiment's ``training:`` section all read
this class. The defaults are set for a few hundred labelled queries and an encoder base; the measurements behind
them are in ``benchmarks/``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from haystack_hardneg.evaluate.selection import MIN_INFORMATIVE_QUERIES
from haystack_hardneg.options import Options, option
from haystack_hardneg.train.heads import HEADS, HeadName

LossName = Literal["auto", "triplet", "listwise", "bce", "margin_mse", "listnet"]
LOSSES: tuple[str, ...] = ("auto", "triplet", "listwise", "bce", "margin_mse", "listnet")
# Losses that learn from the mining ensemble's scores of each row (the teacher), not only from its labels.
TEACHER_LOSSES: tuple[str, ...] = ("margin_mse", "listnet")
# What ``auto`` trains with, by whether the rows carry the teacher's scores: listnet with the labels scored best on
# validation on both data sets of benchmarks/recipe-study/; the paper's triplet loss needs labels only.
AUTO_LOSS = {True: "listnet", False: "triplet"}
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
# Options added after experiments were recorded: an experiment's training key names them only when they differ
# from their default, so that recorded runs keep their keys (experiment/keys.py).
KEYED_WHEN_SET: tuple[str, ...] = ("max_steps", "max_minutes", "max_validation_queries", "min_validation_queries",
                                   "teacher_scale", "label_weight", "teacher_model", "keep_layers",
                                   "distill_candidates")


@dataclass
class TrainingConfig(Options):
    """How to train a cross-encoder on mined triplets."""

    base_model: str = option(help=(
        "a pre-trained re-ranker (keeps its head) or any encoder (gets a new one-logit head): hub id or folder"))
    output_dir: str = option(flag="--out", help="where checkpoints, the model (OUT/model) and the report go")
    head: HeadName = option("auto", choices=HEADS, help=(
        "new scoring head of an encoder base: mean / cls (mean of the token embeddings / [CLS] -> one logit), "
        "classifier (transformers' head on BERT's pooler) or auto (the base's own pooling, else mean)"))
    loss: LossName = option("auto", choices=LOSSES, help=(
        "triplet (margin ranking, the paper), listwise (softmax over positive and negatives), bce, or distillation "
        "from the mining ensemble's scores: margin_mse (its score margins) or listnet (its softmax over the row); "
        "auto: listnet where the triplets carry the ensemble's scores (from mine), else triplet"))
    epochs: float = option(3.0, help="passes over the triplets; the best epoch on validation is kept")
    max_steps: int | None = option(None, help="stop after at most this many steps (none: the epochs decide)")
    max_minutes: float | None = option(None, help=(
        "stop training after this many minutes (validated and saved first); the best checkpoint so far is kept. "
        "In an experiment, the minutes become one step count for every strategy, from the plan's measured step "
        "time (budget.json), so that strategies are compared at equal steps (none: no limit)"))
    batch_size: int = option(8, help="rows per step (each row scores 1 + negatives pairs)")
    encoder_lr: float = option(5e-5, help="learning rate of the pre-trained weights")
    head_lr: float | None = option(2e-3, help="learning rate of a new head (none: the encoder's)")
    margin: float = option(1.0, help="margin of the triplet loss (and of margin_mse's label term)")
    teacher_scale: float = option(20.0, help=(
        "margin_mse / listnet: the mining ensemble's scores (cosine similarities) times this, the student's logit "
        "scale (a teacher_model's logits are on that scale already and are used as they are)"))
    label_weight: float = option(0.5, help=(
        "margin_mse / listnet: weight of the labels beside the teacher (0: the teacher alone; listnet at 1 is "
        "listwise)"))
    teacher_model: str | None = option(None, help=(
        "distil: a fine-tuned cross-encoder (folder or hub id) whose scores of each row's positive and negatives the "
        "model learns with margin_mse / listnet, instead of the mining ensemble's"))
    keep_layers: int | None = option(None, help=(
        "keep only this many of base_model's transformer layers, evenly spaced with the last one kept (e.g. 3 of 6: "
        "layers 2, 4, 6): a smaller, faster student, trained with teacher_model"))
    distill_candidates: int = option(0, help=(
        "with teacher_model: also learn its scores of each training query's first-stage top K (the validation "
        "candidates), in seeded random groups as wide as a mined row: what the student re-ranks at test time, "
        "where the mined rows are few; 0: the mined rows only"))
    warmup_ratio: float = option(0.1, help="share of steps with a rising learning rate")
    validation_fraction: float = option(0.1, help="share of the training queries held out for validation")
    max_validation_queries: int | None = option(200, help=(
        "hold out at most this many queries (validation re-ranks each one's candidates at every evaluation; "
        "none: no limit)"))
    min_validation_queries: int = option(MIN_INFORMATIVE_QUERIES, help=(
        "held-out queries with a relevant document among their candidates needed to trust the fusion weight "
        "chosen on them; with fewer the stored weight is 0 (the first stage's order) and the run warns"))
    eval_steps: int | None = option(None, help="validate and checkpoint every this many steps (none: each epoch)")
    max_length: int = option(256, help="truncation length of (query, document) pairs in tokens")
    precision: Literal["fp32", "bf16"] = option("fp32", choices=PRECISIONS, help=(
        "bf16: mixed precision (bfloat16 compute, float32 weights), faster on CPUs with bfloat16 instructions "
        "and on recent GPUs; the saved model is float32 either way"))
    seed: int = option(0, help="seeds the split, the order of rows and the new head")
    validation_candidates: str | None = option(None, cli=False, help=(
        "the miner's candidates.jsonl: validate by re-ranking the held-out queries' first-stage candidates and "
        "choose the fusion weight there (none: mined negatives, no fusion weight)"))
    strategy: str = option("unknown", help="the negative strategy of the triplets (for the model card)")
    data_description: str = option("", cli=False, help="what the triplets are (for the model card)")
    # Free-form notes; part of an experiment's training key, so it stays while recorded runs use it.
    extra: dict[str, Any] = option(default_factory=dict, cli=False, help="free-form notes kept with the config")

    def validate(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1).")
        if self.epochs <= 0 or self.batch_size < 1:
            raise ValueError("epochs must be > 0 and batch_size >= 1.")
        if (self.max_steps is not None and self.max_steps < 1) or (self.max_minutes is not None and
                                                                  self.max_minutes <= 0):
            raise ValueError("max_steps must be >= 1 and max_minutes > 0 (none: no limit).")
        if self.max_validation_queries is not None and self.max_validation_queries < 1:
            raise ValueError("max_validation_queries must be >= 1 (none: no limit).")
        if self.min_validation_queries < 1:
            raise ValueError("min_validation_queries must be >= 1.")
        if self.teacher_scale <= 0 or not 0 <= self.label_weight <= 1:
            raise ValueError("teacher_scale must be > 0 and label_weight in [0, 1].")
        if self.keep_layers is not None and self.keep_layers < 1:
            raise ValueError("keep_layers must be >= 1 (none: every layer).")
        if self.distill_candidates < 0:
            raise ValueError("distill_candidates must be >= 0 (0: the mined rows only).")
        if self.distill_candidates and self.label_weight:
            # A group's first column is a random candidate, not a labelled positive: a label term would teach it.
            raise ValueError(f"distill_candidates adds groups of first-stage candidates that carry no labels, so the "
                             f"label term (label_weight {self.label_weight:g}) would train a random candidate as "
                             f"the positive: set label_weight to 0 (train --label-weight 0), the teacher alone.")
        if self.teacher_model is not None and self.loss not in ("auto", *TEACHER_LOSSES):
            raise ValueError(f"teacher_model is learnt from by a distillation loss: choose loss margin_mse or listnet "
                             f"(or auto), not {self.loss}.")


def reads_teacher_scores(loss: str) -> bool:
    """Whether training with ``loss`` reads the mining ensemble's scores of each row (``auto`` does where there)."""
    return loss == "auto" or loss in TEACHER_LOSSES


def resolve_loss(config: TrainingConfig, teacher_scores: bool) -> TrainingConfig:
    """``config`` with ``auto`` replaced by the loss it trains with, given whether the rows carry the teacher's
    scores; any other loss as it is."""
    return replace(config, loss=AUTO_LOSS[teacher_scores]) if config.loss == "auto" else config

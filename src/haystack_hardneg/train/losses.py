"""Losses for training a cross-encoder on (query, positive, negative_1 .. negative_n) rows.

- ``triplet``: the paper's margin ranking loss on s(q, p) - s(q, n), averaged over the negatives
  (TripletMarginRankingLoss below).
- ``listwise``: softmax cross-entropy over the logits of the positive and its negatives (ListwiseSoftmaxLoss
  below: sentence-transformers' MultipleNegativesRankingLoss without in-batch negatives, which it cannot turn off).
- ``bce``: binary cross-entropy on (query, positive, 1) and (query, negative_i, 0) pairs (sentence-transformers'
  BinaryCrossEntropyLoss; the rows are unrolled into labelled pairs by :func:`to_labelled_pairs`).

Distillation from the mining ensemble (the rows carry its ``scores``: positive, then each negative; see
``mine.triplets.attach_teacher_scores``), each optionally mixed with the labels by ``label_weight``:

- ``margin_mse``: MSE between the student's margins s(q, p) - s(q, n_i) and the teacher's (TeacherMarginMSELoss),
  plus ``label_weight`` x the triplet loss.
- ``listnet``: cross-entropy between the teacher's softmax over the row and the student's (TeacherListNetLoss),
  the target mixed with the positive's one-hot label by ``label_weight``.

sentence-transformers has both (MarginMSELoss, ListNetLoss; the tests check that ours compute the same values);
ours score a row's positive and negatives in one forward pass and reuse it for the label term, so that
distillation costs what the triplet loss costs per step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from haystack_hardneg.extras import require
from haystack_hardneg.mine.triplets import negative_columns
from haystack_hardneg.train.config import LOSSES, LossName


class _RowLoss(nn.Module):
    """Scores every (query, document) column pair of a batch of rows with the cross-encoder being trained."""

    def __init__(self, model) -> None:
        super().__init__()
        if getattr(model, "num_labels", 1) != 1:
            raise ValueError(f"{type(self).__name__} needs a cross-encoder with one output label.")
        self.model = model

    def column_scores(self, inputs: list[list[str]], prompt: str | None, task: str | None) -> Tensor:
        """``batch x (1 + negatives)`` logits: column 0 the positive, then each negative."""
        from sentence_transformers.util import batch_to_device

        queries, documents = inputs[0], inputs[1:]
        if len(documents) < 2:
            raise ValueError(f"{type(self).__name__} needs rows of (query, positive, negative_1, ...).")
        pairs = [(q, d) for column in documents for q, d in zip(queries, column)]
        features = batch_to_device(self.model.preprocess(pairs, prompt=prompt, task=task), self.model.device)
        return self.model(features)["scores"].squeeze(1).reshape(len(documents), len(queries)).T


class TripletMarginRankingLoss(_RowLoss):
    """Margin ranking on cross-encoder logits: ``mean(relu(margin - (s(q, p) - s(q, n))))`` over every negative.

    It asks only that each positive outscore each of its negatives by ``margin``, which suits a few hundred
    queries with noisy hard negatives better than forcing probabilities to 0/1. Use with rows of
    ``(query, positive, negative_1, ..., negative_n)`` and a model with one output label.

    Reference: the triplet objective of "Enhancing Retrieval Performance: An Ensemble Approach For Hard
    Negative Mining" (arXiv 2411.02404); margin ranking loss as in ``torch.nn.MarginRankingLoss``.
    """

    def __init__(self, model, margin: float = 1.0) -> None:
        super().__init__(model)
        if margin <= 0:
            raise ValueError("margin must be > 0.")
        self.margin = margin

    def forward(self, inputs: list[list[str]], labels: Tensor | None = None, prompt: str | None = None,
                task: str | None = None) -> Tensor:
        scores = self.column_scores(inputs, prompt, task)
        return torch.relu(self.margin - (scores[:, :1] - scores[:, 1:])).mean()

    def get_config_dict(self) -> dict[str, float]:
        return {"margin": self.margin}


class ListwiseSoftmaxLoss(_RowLoss):
    """Cross-entropy of a softmax over the logits of the positive and its hard negatives (positive = class 0).

    The listwise view of the same rows: every negative competes with the positive at once, and the hardest
    ones dominate the gradient. Reference: InfoNCE / "Representation Learning with Contrastive Predictive
    Coding" (van den Oord et al., 2018), restricted to mined negatives.
    """

    def __init__(self, model, temperature: float = 1.0) -> None:
        super().__init__(model)
        if temperature <= 0:
            raise ValueError("temperature must be > 0.")
        self.temperature = temperature

    def forward(self, inputs: list[list[str]], labels: Tensor | None = None, prompt: str | None = None,
                task: str | None = None) -> Tensor:
        scores = self.column_scores(inputs, prompt, task) / self.temperature
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        return nn.functional.cross_entropy(scores, target)

    def get_config_dict(self) -> dict[str, float]:
        return {"temperature": self.temperature}


class _TeacherLoss(_RowLoss):
    """A row loss against the teacher's scores of the row (``labels``: batch x (1 + negatives), positive first),
    scaled by ``teacher_scale`` into the student's logit range: the ensemble's cosine similarities differ by
    hundredths, a cross-encoder's logits by units."""

    def __init__(self, model, teacher_scale: float = 20.0, label_weight: float = 0.5) -> None:
        super().__init__(model)
        if teacher_scale <= 0 or not 0 <= label_weight <= 1:
            raise ValueError("teacher_scale must be > 0 and label_weight in [0, 1].")
        self.teacher_scale = teacher_scale
        self.label_weight = label_weight

    def teacher(self, labels: Tensor | list[Tensor] | None, scores: Tensor) -> Tensor:
        """The teacher's scaled scores in float32 (under bf16 autocast the student's are bfloat16, whose steps of
        about 0.004 near the teacher's cosines would blur the margins it teaches)."""
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs the teacher's scores of each row (a 'scores' column).")
        teacher = torch.stack(list(labels)) if isinstance(labels, (list, tuple)) else labels
        if teacher.shape != scores.shape:
            raise ValueError(f"Teacher scores of shape {tuple(teacher.shape)} for rows of {scores.shape[1]} "
                             f"documents: give one score for the positive and one per negative.")
        return self.teacher_scale * teacher.to(scores.device, torch.float32)

    def get_config_dict(self) -> dict[str, float]:
        return {"teacher_scale": self.teacher_scale, "label_weight": self.label_weight}


class TeacherMarginMSELoss(_TeacherLoss):
    """``mse(s(q, p) - s(q, n_i), t(q, p) - t(q, n_i))`` over every negative, plus ``label_weight`` x the triplet
    margin loss on the same scores (with ``margin``).

    The teacher says how much worse each negative is than the positive, not only that it is; a negative the
    teacher scores above the positive (a likely false negative) is pushed down less, or with the teacher alone
    (``label_weight`` 0) pulled up. Reference:
    "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation" (Hofstätter et al.,
    2020); sentence-transformers' cross-encoder MarginMSELoss.
    """

    def __init__(self, model, teacher_scale: float = 20.0, label_weight: float = 0.5, margin: float = 1.0) -> None:
        super().__init__(model, teacher_scale, label_weight)
        if margin <= 0:
            raise ValueError("margin must be > 0.")
        self.margin = margin

    def forward(self, inputs: list[list[str]], labels: Tensor | None = None, prompt: str | None = None,
                task: str | None = None) -> Tensor:
        scores = self.column_scores(inputs, prompt, task).float()
        teacher = self.teacher(labels, scores)
        margins = scores[:, :1] - scores[:, 1:]
        distill = nn.functional.mse_loss(margins, teacher[:, :1] - teacher[:, 1:])
        return distill + self.label_weight * torch.relu(self.margin - margins).mean()

    def get_config_dict(self) -> dict[str, float]:
        return {**super().get_config_dict(), "margin": self.margin}


class TeacherListNetLoss(_TeacherLoss):
    """Cross-entropy between a target distribution over the row's documents and the student's softmax: the
    teacher's softmax, mixed with the label (all mass on the positive) by ``label_weight`` (1: the listwise loss).

    Listwise: one query's positive and negatives compete together, ordered as the teacher orders them. Reference:
    "Learning to Rank: From Pairwise Approach to Listwise Approach" (Cao et al., 2007, ListNet's top-one
    probability); sentence-transformers' ListNetLoss.
    """

    def forward(self, inputs: list[list[str]], labels: Tensor | None = None, prompt: str | None = None,
                task: str | None = None) -> Tensor:
        scores = self.column_scores(inputs, prompt, task).float()
        target = (1 - self.label_weight) * torch.softmax(self.teacher(labels, scores), dim=1)
        target[:, 0] += self.label_weight
        return -(target * torch.log_softmax(scores, dim=1)).sum(dim=1).mean()


def build_loss(name: LossName, model, *, margin: float = 1.0, teacher_scale: float = 20.0,
               label_weight: float = 0.5) -> nn.Module:
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    if name == "triplet":
        return TripletMarginRankingLoss(model, margin=margin)
    if name == "listwise":
        return ListwiseSoftmaxLoss(model)
    if name == "margin_mse":
        return TeacherMarginMSELoss(model, teacher_scale=teacher_scale, label_weight=label_weight, margin=margin)
    if name == "listnet":
        return TeacherListNetLoss(model, teacher_scale=teacher_scale, label_weight=label_weight)
    if name == "bce":
        return BinaryCrossEntropyLoss(model)
    raise ValueError(f"Unknown loss {name!r}; choose one of {LOSSES}.")


def to_labelled_pairs(dataset):
    """Rows (query, positive, negative_1..n) -> rows (query, passage, label) for binary cross-entropy."""
    Dataset = require("datasets", "Training").Dataset

    negatives = negative_columns(dataset.column_names)
    queries, passages, labels = [], [], []
    for row in dataset:
        queries.append(row["query"]), passages.append(row["positive"]), labels.append(1.0)
        for column in negatives:
            queries.append(row["query"]), passages.append(row[column]), labels.append(0.0)
    return Dataset.from_dict({"query": queries, "passage": passages, "label": labels})

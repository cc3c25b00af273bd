"""Losses for training a cross-encoder on (query, positive, negative_1 .. negative_n) rows.

- ``triplet``: the paper's margin ranking loss on s(q, p) - s(q, n), averaged over the negatives
  (TripletMarginRankingLoss below).
- ``listwise``: softmax cross-entropy over the logits of the positive and its negatives (ListwiseSoftmaxLoss
  below: sentence-transformers' MultipleNegativesRankingLoss without in-batch negatives, which it cannot turn off).
- ``bce``: binary cross-entropy on (query, positive, 1) and (query, negative_i, 0) pairs (sentence-transformers'
  BinaryCrossEntropyLoss; the rows are unrolled into labelled pairs by :func:`to_labelled_pairs`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from haystack_hardneg.extras import require
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


def build_loss(name: LossName, model, *, margin: float = 1.0) -> nn.Module:
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    if name == "triplet":
        return TripletMarginRankingLoss(model, margin=margin)
    if name == "listwise":
        return ListwiseSoftmaxLoss(model)
    if name == "bce":
        return BinaryCrossEntropyLoss(model)
    raise ValueError(f"Unknown loss {name!r}; choose one of {LOSSES}.")


def to_labelled_pairs(dataset):
    """Rows (query, positive, negative_1..n) -> rows (query, passage, label) for binary cross-entropy."""
    Dataset = require("datasets", "Training").Dataset

    negative_columns = [c for c in dataset.column_names if c.startswith("negative_")]
    queries, passages, labels = [], [], []
    for row in dataset:
        queries.append(row["query"]), passages.append(row["positive"]), labels.append(1.0)
        for column in negative_columns:
            queries.append(row["query"]), passages.append(row[column]), labels.append(0.0)
    return Dataset.from_dict({"query": queries, "passage": passages, "label": labels})

"""Scoring long documents by passages: overlapping word windows, one cross-encoder score each, aggregated."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from haystack_hardneg.ingest.split import split_text

Aggregation = Literal["max", "first", "mean"]
AGGREGATIONS: tuple[str, ...] = ("max", "first", "mean")


def passages(text: str, *, words: int | None, overlap: int = 0) -> list[str]:
    """The text's windows of ``words`` words (sharing ``overlap``); the whole text when ``words`` is None."""
    if words is None:
        return [text]
    return [chunk.text for chunk in split_text(text, unit="word", length=words, overlap=overlap)] or [text]


def aggregate(scores: Sequence[np.ndarray], how: Aggregation) -> np.ndarray:
    """One score per document from the scores of its passages (``scores[i]`` holds document i's passages)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}.")
    if how == "max":
        return np.array([float(np.max(s)) for s in scores])
    if how == "first":
        return np.array([float(s[0]) for s in scores])
    return np.array([float(np.mean(s)) for s in scores])

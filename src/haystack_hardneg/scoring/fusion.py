"""Fusing the re-ranker's score with the first stage's: per-query min-max normalisation, then interpolation.

A fine-tuned re-ranker trained on a few hundred queries is often good at fine distinctions yet noisy overall;
keeping part of the retriever's score guards against it (the measurements are in ``benchmarks/``).
"""

from __future__ import annotations

import numpy as np


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to [0, 1] over one query's candidates; all-equal scores map to 1."""
    scores = np.asarray(scores, dtype=np.float64)
    low, high = np.min(scores), np.max(scores)
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("Scores to fuse must be finite.")
    if high == low:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


def fuse(ranker_scores: np.ndarray, retriever_scores: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * norm(ranker) + (1 - alpha) * norm(retriever)``; ``alpha=1`` is the re-ranker alone."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    ranker_scores, retriever_scores = np.asarray(ranker_scores), np.asarray(retriever_scores)
    if ranker_scores.shape != retriever_scores.shape:
        raise ValueError("One retriever score per re-ranked document is needed for fusion.")
    return alpha * min_max(ranker_scores) + (1.0 - alpha) * min_max(retriever_scores)


def fuse_scores(ranker: dict[str, float], retriever: dict[str, float], alpha: float) -> dict[str, float]:
    """``fuse`` over one query's re-ranked documents, keyed by id (``retriever`` must score every one of them)."""
    ids = list(ranker)
    if not ids:
        return {}
    fused = fuse(np.array([ranker[d] for d in ids]), np.array([retriever[d] for d in ids]), alpha)
    return dict(zip(ids, fused.tolist()))


def fuse_rankings(dense: dict[str, float], lexical: dict[str, float], lexical_weight: float) -> dict[str, float]:
    """A hybrid first stage: ``w * norm(lexical) + (1 - w) * norm(dense)`` per document, each list min-max
    normalised over its own results; a document missing from one list gets 0 from it."""
    if not 0.0 <= lexical_weight <= 1.0:
        raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}.")
    dense_n = dict(zip(dense, min_max(np.array(list(dense.values()))))) if dense else {}
    lexical_n = dict(zip(lexical, min_max(np.array(list(lexical.values()))))) if lexical else {}
    return {d: lexical_weight * float(lexical_n.get(d, 0.0)) + (1 - lexical_weight) * float(dense_n.get(d, 0.0))
            for d in {**dense_n, **lexical_n}}

"""The quality gate of an export: the exported model against the fp32 model on the validation candidates the
training kept (held-out training queries and their first-stage top-k), by nDCG@10 of each re-ranking alone."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from haystack_hardneg.mine.candidates import record_qrels

# An nDCG@10 drop up to this is noise for a few hundred queries; above it the export is not made the default.
DEFAULT_MAX_LOSS = 0.005

Predict = Callable[[Sequence[tuple[str, str]]], np.ndarray]


def gate_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that can tell two re-rankers apart: candidates, and a relevant document among them."""
    kept = []
    for record in records:
        relevant = {d for d, grade in record_qrels(record).items() if grade > 0}
        if record.get("candidates") and relevant & {c["id"] for c in record["candidates"]}:
            kept.append(record)
    return kept


def _ndcg_at_10(records: list[dict[str, Any]], scores: np.ndarray) -> np.ndarray:
    """Per-query graded nDCG@10 (scikit-learn's, linear gains; judged documents outside the candidates count in the
    ideal ranking, as in the experiment's metrics)."""
    from sklearn.metrics import ndcg_score

    values, start = [], 0
    for record in records:
        grades = record_qrels(record)
        ids = [c["id"] for c in record["candidates"]]
        query_scores = list(scores[start:start + len(ids)])
        start += len(ids)
        missing = [g for d, g in grades.items() if g > 0 and d not in set(ids)]
        floor = min(query_scores) - 1.0
        truth = [grades.get(d, 0) for d in ids] + missing
        ranked = query_scores + [floor - i for i in range(len(missing))]
        values.append(ndcg_score([truth], [ranked], k=10))
    return np.asarray(values)


def quality_check(reference: Predict, exported: Predict, records: list[dict[str, Any]],
                  max_loss: float = DEFAULT_MAX_LOSS) -> dict[str, Any]:
    """nDCG@10 of the fp32 ``reference`` and the ``exported`` model re-ranking ``records`` alone, the loss, how
    closely their scores agree, and whether the loss is within ``max_loss``."""
    records = gate_records(records)
    if not records:
        raise ValueError("No validation query has a relevant document among its candidates: nothing to check on.")
    pairs = [(r["query"], c["text"]) for r in records for c in r["candidates"]]
    before, after = np.asarray(reference(pairs), dtype=np.float64), np.asarray(exported(pairs), dtype=np.float64)
    ndcg_before, ndcg_after = _ndcg_at_10(records, before), _ndcg_at_10(records, after)
    bounds = np.cumsum([0, *(len(r["candidates"]) for r in records)])
    same_top = np.mean([np.argmax(before[a:b]) == np.argmax(after[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    loss = float(ndcg_before.mean() - ndcg_after.mean())
    return {"queries": len(records), "pairs": len(pairs),
            "ndcg@10": {"fp32": float(ndcg_before.mean()), "exported": float(ndcg_after.mean()), "loss": loss},
            "score_correlation": float(np.corrcoef(before, after)[0, 1]) if len(pairs) > 1 else 1.0,
            "same_top1": float(same_top), "max_abs_score_difference": float(np.max(np.abs(before - after))),
            "max_loss": max_loss, "passed": loss <= max_loss}

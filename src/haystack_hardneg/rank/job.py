"""The re-ranking step as one job: a re-ranker's scores for each query's first-stage candidates."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from haystack import Document
from tqdm.auto import tqdm


def rerank_records(ranker, records: list[dict[str, Any]], k: int, *, desc: str = "Re-ranking",
                   progress_bar: bool = True) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Scores (sigmoid-scaled, as fusion reads them) of every query's top ``k`` candidates, keyed by query id
    and document id, and the seconds each query took. ``records`` are first-stage records (``query_id``,
    ``query``, ``candidates`` with ``id`` and ``text``); the texts already carry their meta fields, as in
    training, so they are scored as they are."""
    scores, seconds = {}, []
    for record in tqdm(records, desc=desc, unit="query", disable=not progress_bar):
        started = time.perf_counter()
        top = record["candidates"][:k]
        documents = [Document(id=d["id"], content=d["text"]) for d in top]
        values = ranker.score(record["query"], documents, scale_score=True) if documents else []
        scores[record["query_id"]] = dict(zip((d["id"] for d in top), map(float, values)))
        seconds.append(time.perf_counter() - started)
    return scores, seconds


def latency(seconds: list[float]) -> dict[str, float]:
    """Total seconds and milliseconds per query (mean, median, 95th percentile) of per-query ``seconds``."""
    ms = 1000 * np.asarray(seconds or [0.0])
    return {"seconds": float(np.sum(seconds)), "ms_per_query": float(ms.mean()),
            "ms_per_query_median": float(np.median(ms)), "ms_per_query_p95": float(np.percentile(ms, 95))}

"""Exact top-k inner-product search over document blocks: memory stays bounded, never a full N x N matrix."""

from __future__ import annotations

import numpy as np


def top_k(
    queries: np.ndarray,
    documents: np.ndarray,
    k: int,
    *,
    query_block: int = 1024,
    document_block: int = 65536,
    exclude: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring documents for every query, best first.

    Scores are inner products (cosines for unit vectors). Memory peaks at ``query_block x document_block``
    floats plus ``query_block x 2k`` kept candidates. ``exclude[i]`` lists document indices never returned
    for query ``i`` (e.g. its positives).

    :returns: ``(indices, scores)``, both ``len(queries) x k``; a row is padded with -1 / -inf when fewer
        than ``k`` documents are left.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    documents = np.ascontiguousarray(documents, dtype=np.float32)
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise ValueError(f"Query vectors {queries.shape} and document vectors {documents.shape} do not match.")
    n_queries, n_docs = len(queries), len(documents)
    k = int(k)
    out_idx = np.full((n_queries, k), -1, dtype=np.int64)
    out_score = np.full((n_queries, k), -np.inf, dtype=np.float32)
    if k <= 0 or n_docs == 0:
        return out_idx, out_score
    for q0 in range(0, n_queries, query_block):
        q1 = min(q0 + query_block, n_queries)
        best_idx = np.full((q1 - q0, 0), -1, dtype=np.int64)
        best_score = np.full((q1 - q0, 0), -np.inf, dtype=np.float32)
        for d0 in range(0, n_docs, document_block):
            d1 = min(d0 + document_block, n_docs)
            scores = queries[q0:q1] @ documents[d0:d1].T
            if exclude is not None:
                for row in range(q1 - q0):
                    banned = exclude[q0 + row]
                    banned = banned[(banned >= d0) & (banned < d1)] - d0
                    scores[row, banned] = -np.inf
            take = min(k, d1 - d0)
            part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            cand_idx = np.concatenate([best_idx, part + d0], axis=1)
            cand_score = np.concatenate([best_score, np.take_along_axis(scores, part, axis=1)], axis=1)
            keep = np.argpartition(-cand_score, min(k, cand_score.shape[1]) - 1, axis=1)[:, :k]
            best_idx = np.take_along_axis(cand_idx, keep, axis=1)
            best_score = np.take_along_axis(cand_score, keep, axis=1)
        order = np.argsort(-best_score, axis=1, kind="stable")
        best_idx = np.take_along_axis(best_idx, order, axis=1)
        best_score = np.take_along_axis(best_score, order, axis=1)
        best_idx[~np.isfinite(best_score)] = -1
        out_idx[q0:q1, : best_idx.shape[1]] = best_idx
        out_score[q0:q1, : best_score.shape[1]] = best_score
    return out_idx, out_score

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
    import torch

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
    # (row, column) of every excluded pair, built once: masking a block is then one fancy-index assignment.
    if exclude is not None:
        banned_rows = np.repeat(np.arange(n_queries), [len(e) for e in exclude])
        banned_cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude]) if n_queries else \
            np.zeros(0, dtype=np.int64)
    # torch's matmul and topk use every core and select in one pass; numpy's argpartition is single-threaded.
    query_tensor = torch.from_numpy(queries)
    document_tensor = torch.from_numpy(documents)
    banned = None
    for q0 in range(0, n_queries, query_block):
        q1 = min(q0 + query_block, n_queries)
        if exclude is not None:
            in_block = (banned_rows >= q0) & (banned_rows < q1)
            banned = (banned_rows[in_block] - q0, banned_cols[in_block])
        best_score, best_idx = _block_top_k(query_tensor[q0:q1], document_tensor, k, document_block, banned)
        best_score, best_idx = best_score.numpy(), best_idx.numpy().copy()
        best_idx[~np.isfinite(best_score)] = -1
        out_idx[q0:q1, : best_idx.shape[1]] = best_idx
        out_score[q0:q1, : best_score.shape[1]] = best_score
    return out_idx, out_score


def _block_top_k(queries, documents, k: int, document_block: int, banned: tuple[np.ndarray, np.ndarray] | None):
    """One block of queries against every document, ``document_block`` documents at a time, keeping the best
    ``k`` (torch tensors); ``banned``: (row, column) pairs never returned."""
    import torch

    best_score, best_idx = None, None
    for d0 in range(0, len(documents), document_block):
        d1 = min(d0 + document_block, len(documents))
        scores = queries @ documents[d0:d1].T
        if banned is not None:
            rows, cols = banned
            hit = (cols >= d0) & (cols < d1)
            scores[torch.from_numpy(rows[hit]), torch.from_numpy(cols[hit] - d0)] = -torch.inf
        part_score, part_idx = torch.topk(scores, min(k, d1 - d0), dim=1)
        if d0 == 0:
            best_score, best_idx = part_score, part_idx
            continue
        cand_score = torch.cat([best_score, part_score], dim=1)
        cand_idx = torch.cat([best_idx, part_idx + d0], dim=1)
        best_score, keep = torch.topk(cand_score, min(k, cand_score.shape[1]), dim=1)
        best_idx = torch.gather(cand_idx, 1, keep)
    return best_score, best_idx


def full_order(scores: np.ndarray, exclude: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Every document index but ``exclude``, by descending ``scores`` (ties: descending ``tiebreak``, then index
    order): one query's ranking of the whole corpus, for the rare pair whose window runs short."""
    keys = (-np.asarray(scores, dtype=np.float64),) if tiebreak is None else \
        (-np.asarray(tiebreak, dtype=np.float64), -np.asarray(scores, dtype=np.float64))
    order = np.lexsort(keys)
    return order[~np.isin(order, exclude)]

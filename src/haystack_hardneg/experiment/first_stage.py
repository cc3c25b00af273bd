"""The experiment's first stage as plain functions: each query's dense (and BM25) list, and the hybrid candidates
the re-rankers re-score, with the lexical weight chosen on training queries."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from haystack_hardneg.evaluate.selection import FUSION_ALPHAS, choose_setting
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.mine.candidates import record_qrels
from haystack_hardneg.scoring.fusion import fuse_rankings
from haystack_hardneg.store.qdrant import search_many


def retrieve_lists(split, text_embedder, store, lexical_retriever, top_k: int, *, meta_fields: list[str],
                   separator: str, desc: str, progress_bar: bool = True, min_relevance: int = 1,
                   block: int = 256) -> list[dict[str, Any]]:
    """Per query of ``split``: its positives' ids (graded at least ``min_relevance``), every judged document's
    grade and each retriever's list (id, score, the text as ranked).

    What a query pipeline of the ensemble embedder, Qdrant's retriever and the BM25 retriever returns one query at
    a time, computed ``block`` queries at once: the queries embedded in batches, Qdrant's batch query, bm25s
    scoring the block together (tests/experiment checks the two agree)."""

    def listed(documents) -> list[dict[str, Any]]:
        return [{"id": d.id, "score": float(d.score), "text": document_text(d, meta_fields, separator)}
                for d in documents]

    items = list(split.queries.items())
    records = []
    with tqdm(total=len(items), desc=desc, unit="query", disable=not progress_bar) as bar:
        for start in range(0, len(items), block):
            ids, texts = zip(*items[start:start + block])
            dense = search_many(store, text_embedder.encoder.encode(list(texts), kind="query"), top_k)
            lexical = lexical_retriever.retrieve_many(list(texts), top_k) if lexical_retriever is not None else None
            for row, (query_id, text) in enumerate(zip(ids, texts)):
                judged = split.qrels[query_id]
                record = {"query_id": query_id, "query": text,
                          "positive_ids": [d for d, g in judged.items() if g >= min_relevance],
                          "relevance": {d: g for d, g in judged.items() if g > 0}, "dense": listed(dense[row])}
                if lexical is not None:
                    record["lexical"] = listed(lexical[row])
                records.append(record)
            bar.update(len(ids))
    return records


def hybrid_candidates(records: list[dict[str, Any]], weight: float | None, depth: int) -> list[dict[str, Any]]:
    """Each query's candidates, best first: the dense list alone (``weight`` None) or fused with BM25's."""
    out = []
    for record in records:
        texts = {d["id"]: d["text"] for d in [*record["dense"], *record.get("lexical", [])]}
        if weight is None:
            scores = {d["id"]: d["score"] for d in record["dense"]}
        else:
            scores = fuse_rankings({d["id"]: d["score"] for d in record["dense"]},
                                   {d["id"]: d["score"] for d in record.get("lexical", [])}, weight)
        ranked = sorted(scores, key=lambda d: -scores[d])[:depth]
        out.append({k: record[k] for k in ("query_id", "query", "positive_ids", "relevance") if k in record} |
                   {"candidates": [{"id": d, "score": scores[d], "text": texts[d]} for d in ranked]})
    return out


def choose_lexical_weight(records: list[dict[str, Any]], depth: int) -> tuple[float, dict[str, Any]]:
    """The BM25 weight of the hybrid first stage that ranks ``records`` (training queries) best, and the
    measurements behind the choice."""
    qrels = {r["query_id"]: record_qrels(r) for r in records}
    runs = {w: {r["query_id"]: {d["id"]: d["score"] for d in r["candidates"]}
                for r in hybrid_candidates(records, w, depth)} for w in FUSION_ALPHAS}
    return choose_setting(qrels, runs)

"""The experiment's first stage as plain functions: each query's dense (and BM25) list, and the hybrid candidates
the re-rankers re-score, with the lexical weight chosen on training queries."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from haystack_hardneg.evaluate.selection import FUSION_ALPHAS, choose_setting
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.pipelines import query_documents
from haystack_hardneg.rank.fusion import fuse_rankings


def retrieve_lists(split, dense_pipeline, lexical_retriever, *, meta_fields: list[str], separator: str,
                   desc: str, progress_bar: bool = True) -> list[dict[str, Any]]:
    """Per query of ``split``: its relevant ids and each retriever's list (id, score, the text as ranked)."""

    def listed(documents) -> list[dict[str, Any]]:
        return [{"id": d.id, "score": float(d.score), "text": document_text(d, meta_fields, separator)}
                for d in documents]

    records = []
    for query_id, text in tqdm(split.queries.items(), desc=desc, unit="query", disable=not progress_bar):
        record = {"query_id": query_id, "query": text,
                  "positive_ids": [d for d, g in split.qrels[query_id].items() if g > 0],
                  "dense": listed(query_documents(dense_pipeline, text))}
        if lexical_retriever is not None:
            record["lexical"] = listed(lexical_retriever.run(query=text)["documents"])
        records.append(record)
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
        out.append({k: record[k] for k in ("query_id", "query", "positive_ids")} |
                   {"candidates": [{"id": d, "score": scores[d], "text": texts[d]} for d in ranked]})
    return out


def choose_lexical_weight(records: list[dict[str, Any]], depth: int) -> tuple[float, dict[str, Any]]:
    """The BM25 weight of the hybrid first stage that ranks ``records`` (training queries) best, and the
    measurements behind the choice."""
    qrels = {r["query_id"]: {d: 1 for d in r["positive_ids"]} for r in records}
    runs = {w: {r["query_id"]: {d["id"]: d["score"] for d in r["candidates"]}
                for r in hybrid_candidates(records, w, depth)} for w in FUSION_ALPHAS}
    return choose_setting(qrels, runs)

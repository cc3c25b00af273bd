"""First-stage candidates of the training queries, for validating a re-ranker the way it will be used.

A re-ranker meets the first stage's top-k at query time, not a positive beside five mined negatives: judged on
the latter, a model looks far better than it is. ``candidates.jsonl`` keeps, per training query, the ensemble's
top-k documents with their scores and which of them are relevant; the trainer re-ranks those of its held-out
queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from haystack_hardneg.files import atomic_write_text, jsonl_text, read_jsonl
from haystack_hardneg.mine.data import MiningData
from haystack_hardneg.mine.search import top_k


def first_stage_candidates(data: MiningData, k: int = 30) -> list[dict[str, Any]]:
    """Per query: its text, its positives' ids, every judged document's grade (``relevance``) and the ensemble's
    top-``k`` documents (id, text, score), best first."""
    indices, scores = top_k(data.query_vectors, data.doc_vectors, k)
    records = []
    for row, query_id in enumerate(data.query_ids):
        found = [(int(i), float(s)) for i, s in zip(indices[row], scores[row]) if i >= 0]
        records.append({
            "query_id": query_id,
            "query": data.query_texts[row],
            "positive_ids": list(data.positives.get(query_id, [])),
            "relevance": dict((data.relevant or {}).get(query_id)
                              or dict.fromkeys(data.positives.get(query_id, []), 1)),
            "candidates": [{"id": data.doc_ids[i], "text": data.doc_texts[i], "score": s} for i, s in found],
        })
    return records


def record_qrels(record: dict[str, Any]) -> dict[str, int]:
    """A candidate record's judgements as {document id: grade}: its graded ``relevance`` where it has one, else its
    ``positive_ids`` at grade 1 (files written before grades were kept)."""
    return dict(record.get("relevance") or dict.fromkeys(record["positive_ids"], 1))


def write_candidates(path: str | Path, records: list[dict[str, Any]]) -> Path:
    atomic_write_text(path, jsonl_text(records))
    return Path(path)


def load_candidates(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No candidate file at {path} (written by `haystack-hardneg mine`).")
    records = read_jsonl(path)
    for record in records:
        missing = {"query", "positive_ids", "candidates"} - set(record)
        if missing:
            raise ValueError(f"{path}: a record lacks {sorted(missing)}; expected the output of "
                             f"first_stage_candidates.")
    return records

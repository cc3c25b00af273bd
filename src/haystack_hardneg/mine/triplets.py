"""The mined triplets as files: a training set sentence-transformers takes as it is, plus provenance.

``triplets.jsonl`` (or ``.parquet``) holds only the text columns ``query, positive, negative_1 .. negative_n``,
the n-tuple format of sentence-transformers' losses (CrossEncoder MultipleNegativesRankingLoss and friends);
``provenance.jsonl`` holds, row for row, the ids, scores, ranks, clusters and strategy behind each row.
Every file is written to a temporary name and renamed, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_write_bytes, atomic_write_text, jsonl_text, read_jsonl
from haystack_hardneg.mine.negatives import MinedPair, MiningResult

logger = logging.getLogger(__name__)


def negative_columns(column_names) -> list[str]:
    """The negative columns ``negative_1 .. negative_n`` in their numeric order, whatever order ``column_names`` has
    (parquet may sort negative_10 before negative_2): the teacher's scores follow it."""
    return sorted((c for c in column_names if c.startswith("negative_") and c[9:].isdigit()), key=lambda c: int(c[9:]))


def triplet_rows(pairs: list[MinedPair], query_texts: dict[str, str],
                 doc_texts: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for pair in pairs:
        row = {"query": query_texts[pair.query_id], "positive": doc_texts[pair.positive_id]}
        row.update({f"negative_{i}": doc_texts[d] for i, d in enumerate(pair.negative_ids, start=1)})
        rows.append(row)
    return rows


def provenance_rows(result: MiningResult) -> list[dict[str, Any]]:
    return [{"strategy": result.strategy, **asdict(pair)} for pair in result.pairs]


def write_triplets(
    folder: str | Path,
    result: MiningResult,
    query_texts: dict[str, str],
    doc_texts: dict[str, str],
    *,
    file_format: str = "jsonl",
) -> dict[str, Path]:
    """Write ``triplets.<format>``, ``provenance.jsonl`` and ``suspected_positives.jsonl`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = triplet_rows(result.pairs, query_texts, doc_texts)
    paths = {"triplets": folder / f"triplets.{file_format}", "provenance": folder / "provenance.jsonl",
             "suspected_positives": folder / "suspected_positives.jsonl"}
    if file_format == "jsonl":
        atomic_write_text(paths["triplets"], jsonl_text(rows))
    elif file_format == "parquet":
        pa = require("pyarrow", "Writing parquet")
        pq = require("pyarrow.parquet", "Writing parquet")

        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        atomic_write_bytes(paths["triplets"], buffer.getvalue().to_pybytes())
    else:
        raise ValueError(f"file_format must be 'jsonl' or 'parquet', got {file_format!r}.")
    atomic_write_text(paths["provenance"], jsonl_text(provenance_rows(result)))
    suspects = [{"query_id": q, "query": query_texts[q], **entry}
                for q, entries in result.suspected_positives.items() for entry in entries]
    atomic_write_text(paths["suspected_positives"], jsonl_text(suspects))
    return paths


def load_triplets(path: str | Path, *, teacher_scores: bool = False):
    """The triplet file as a ``datasets.Dataset`` (columns query, positive, negative_1 .. negative_n); with
    ``teacher_scores``, also the mining ensemble's ``scores`` of each row from the ``provenance.jsonl`` beside it
    (the teacher of the distillation losses: nothing is embedded again)."""
    load_dataset = require("datasets", "Reading a triplet file").load_dataset

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No triplet file at {path}.")
    if path.stat().st_size == 0:
        raise ValueError(f"The triplet file {path} is empty: mining produced no pairs.")
    kind = "parquet" if path.suffix == ".parquet" else "json"
    dataset = load_dataset(kind, data_files=str(path), split="train")
    provenance = path.parent / "provenance.jsonl"
    if not teacher_scores or "scores" in dataset.column_names or not provenance.is_file():
        return dataset
    return attach_teacher_scores(dataset, read_jsonl(provenance), where=str(provenance))


def provenance_scores(provenance: list[dict[str, Any]]) -> list[list[float]] | None:
    """Each row's ensemble scores, positive first, from the miner's provenance; None where a score is missing."""
    rows = []
    for record in provenance:
        scores = [record.get("positive_score"), *record.get("negative_scores", [])]
        if any(score is None for score in scores):
            return None
        rows.append([float(score) for score in scores])
    return rows


def attach_teacher_scores(dataset, provenance: list[dict[str, Any]], *, where: str = "provenance"):
    """``dataset`` (the triplets) with a ``scores`` column: the ensemble's score of each row's positive and
    negatives, from the miner's ``provenance`` (row for row). The dataset as it is when the provenance does not
    match it row for row (another mining run) or lacks scores."""
    negatives = len(negative_columns(dataset.column_names))
    scores = provenance_scores(provenance)
    problem = ("lacks scores" if scores is None else
               f"has {len(scores)} rows for {len(dataset)} triplets" if len(scores) != len(dataset) else
               f"does not give 1 + {negatives} scores per row" if any(len(r) != 1 + negatives for r in scores)
               else None)
    if problem:
        logger.warning("%s %s (from another mining run?): no teacher scores.", where, problem)
        return dataset
    return dataset.add_column("scores", scores)

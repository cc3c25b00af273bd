"""Relevance labels as people write them, joined to the documents the ingestion pipeline made, and written out as
a BEIR folder that ``mine``, ``train`` and ``experiment`` read.

A labels file is CSV, TSV or JSONL with one judgement per row:

    query     the query text (required)
    document  the judged document: its id, its URL or its file path as given to the converter (required)
    grade     an integer relevance grade: 0 = not relevant, 1, 2, ... = more relevant (optional; default 1)
    query_id  an id of your own for the query (optional; default q1, q2, ... in order of first appearance)

CSV and TSV files need a header line naming the columns. Every problem names the file and line.
"""

from __future__ import annotations

import csv
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from haystack import Document

from haystack_hardneg.files import atomic_write_text, jsonl_text
from haystack_hardneg.ingest.beir import (
    DataError,
    LoadStats,
    OnMissing,
    Qrels,
    check_id,
    check_size,
    parse_grade,
    read_jsonl_records,
    utf8_lines,
)

LABEL_COLUMNS = ("query", "document", "grade", "query_id")


@dataclass(frozen=True)
class Label:
    query_id: str
    query: str
    document: str
    grade: int
    where: str  # file:line, for messages


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV, TSV or JSONL labels file."""
    if path.suffix == ".jsonl":
        yield from read_jsonl_records(path)
        return
    if path.suffix not in (".csv", ".tsv"):
        raise DataError(f"{path}: a labels file is .csv, .tsv or .jsonl, got '{path.suffix}'.")
    tsv = path.suffix == ".tsv"
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name. TSV fields are not quoted.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader((line for _, line in utf8_lines(handle, path)), delimiter="\t" if tsv else ",",
                                quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        missing = {"query", "document"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}:1: the header must name the columns query and document (and optionally "
                            f"grade, query_id); got {reader.fieldnames}.")
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{reader.line_num}: more fields than the header names"
                                f"{'' if tsv else '; put a query or document that holds a comma in double quotes'}.")
            if any(str(v or "").strip() for v in row.values()):
                yield reader.line_num, row


def load_labels(path: str | Path) -> list[Label]:
    """The judgements of a labels file (see the module docstring for its columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No labels file at {path}.")
    check_size(path, "labels")
    rows = list(_rows(path))
    explicit = {str(row["query_id"]).strip() for _, row in rows if row.get("query_id") not in (None, "")}
    labels: list[Label] = []
    ids: dict[str, str] = {}  # query text -> id
    numbers = (f"q{n}" for n in itertools.count(1) if f"q{n}" not in explicit)
    for number, row in rows:
        where = f"{path}:{number}"
        unknown = sorted(set(row) - set(LABEL_COLUMNS))
        if unknown:
            raise DataError(f"{where}: unknown column(s) {unknown}; the columns are {list(LABEL_COLUMNS)}.")
        query, document = (str(row.get(k) if row.get(k) is not None else "").strip() for k in ("query", "document"))
        if not query or not document:
            raise DataError(f"{where}: every row needs a query and a document (an id, URL or file path).")
        grade = row.get("grade")
        grade = 1 if grade is None or str(grade).strip() == "" else parse_grade(grade, where)
        given = check_id(str(row.get("query_id") if row.get("query_id") is not None else "").strip(), where,
                         "query_id")
        query_id = given or ids.get(query) or next(numbers)
        ids.setdefault(query, query_id)
        labels.append(Label(query_id, query, document, grade, where))
    if not labels:
        raise DataError(f"{path}: no labels in the file.")
    return labels


def _references(document: Document) -> list[str]:
    """The names a label may use for ``document``: its id, the source URL or path it came from (as given and
    resolved), and its parent's id for a chunk."""
    names = [document.id, str(document.meta.get("parent_id") or "")]
    for key in ("source", "url", "file_path"):
        value = str(document.meta.get(key) or "")
        names.append(value)
        if value and "://" not in value:
            names.append(str(Path(value).expanduser().resolve()))
    return [n for n in names if n]


def _document_ids(documents: list[Document]) -> dict[str, str]:
    """Every name a label may use -> the id of the (whole) document it names."""
    ids: dict[str, str] = {}
    for document in documents:
        whole = str(document.meta.get("parent_id") or document.id)
        for name in _references(document):
            ids.setdefault(name, whole)
    return ids


def join_labels(labels: list[Label], documents: list[Document], *, on_missing: OnMissing = "error",
                stats: LoadStats | None = None) -> tuple[dict[str, str], Qrels]:
    """Queries (id -> text) and judgements (query id -> {document id: grade}) of ``labels``, each document named by
    id, URL or path resolved to the id of an ingested document. A label naming no ingested document is an error
    listing where (``on_missing="skip"``: dropped and counted in ``stats.unknown_judgements``)."""
    stats = stats if stats is not None else LoadStats()
    ids = _document_ids(documents)
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    unknown: list[Label] = []
    for label in labels:
        if queries.setdefault(label.query_id, label.query) != label.query:
            raise DataError(f"{label.where}: query id '{label.query_id}' was given to another query text before.")
        document = ids.get(label.document) or ids.get(_resolved(label.document))
        if document is None:
            unknown.append(label)
            continue
        judged = qrels.setdefault(label.query_id, {})
        if judged.get(document, label.grade) != label.grade:
            raise DataError(f"{label.where}: '{label.document}' is judged twice for the query with different grades.")
        judged[document] = label.grade
    if unknown and on_missing == "error":
        examples = "; ".join(f"{u.where}: '{u.document}'" for u in unknown[:5])
        raise DataError(f"{len(unknown)} label(s) name no ingested document (by id, URL or path), e.g. {examples}. "
                        f"Fix the labels or the sources, or drop and count them (prepare: --skip-missing).")
    stats.unknown_judgements += len(unknown)
    stats.missing_documents.extend((u.query_id, u.document) for u in unknown)
    return queries, qrels


def _resolved(name: str) -> str:
    return name if "://" in name else str(Path(name).expanduser().resolve())


def split_queries(query_ids: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded split of the queries into train and test (no query in both, at least one in each)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    if len(query_ids) < 2:
        raise DataError(f"{len(query_ids)} labelled query(ies) with a relevant document: a train and a test split "
                        f"need at least two.")
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    test = set(shuffled[: max(1, round(len(shuffled) * test_fraction))])
    return [q for q in query_ids if q not in test], [q for q in query_ids if q in test]


def write_beir_folder(folder: str | Path, documents: list[Document], queries: dict[str, str],
                      splits: dict[str, Qrels]) -> Path:
    """``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` in ``folder`` (each written atomically)."""
    folder = Path(folder)
    for document in documents:
        check_id(document.id, str(document.meta.get("file_path") or document.meta.get("url") or document.id),
                 "document id")
    corpus = [{"_id": d.id, "title": str(d.meta.get("title") or ""), "text": d.content or "",
               "meta": {k: v for k, v in d.meta.items() if k != "title"}} for d in documents]
    atomic_write_text(folder / "corpus.jsonl", jsonl_text(corpus))
    atomic_write_text(folder / "queries.jsonl", jsonl_text([{"_id": q, "text": t} for q, t in queries.items()]))
    for name, qrels in splits.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, judged in qrels.items()
                                                   for d, g in judged.items()]
        atomic_write_text(folder / "qrels" / f"{name}.tsv", "\n".join(lines) + "\n")
    return folder

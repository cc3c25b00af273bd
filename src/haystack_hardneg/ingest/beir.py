"""Loading corpora, queries and relevance judgements: BEIR layout and plain JSONL.

BEIR layout: ``corpus.jsonl`` ({"_id", "title", "text"}), ``queries.jsonl`` ({"_id", "text"}) and
``qrels/<split>.tsv`` (query-id, corpus-id, score, with a header line).
Every problem is reported with the file, line and id so it can be fixed at the source.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from haystack import Document

from haystack_hardneg.defaults import max_label_bytes

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
OnMissing = Literal["error", "skip"]


class DataError(ValueError):
    """The input data is malformed; the message names the file, line and id."""


def read_jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-empty line; a line that is not a JSON object names file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in utf8_lines(handle, path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except RecursionError:
                raise DataError(f"{path}:{number}: not valid JSON here (nested too deeply).") from None
            except json.JSONDecodeError as error:
                reason = error.msg.removesuffix(" at")  # e.g. "Invalid control character at"
                raise DataError(f"{path}:{number}: not valid JSON ({reason} at column {error.colno}).") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}.")
            yield number, record


def check_size(path: Path, what: str) -> None:
    """Refuse a file held in memory whole (labels, queries, qrels) above the size limit, before reading it."""
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    size, limit = path.stat().st_size, max_label_bytes()
    if size > limit:
        raise DataError(f"{path}: {size:,} bytes, more than the {limit:,} a {what} file may have (it is held in "
                        f"memory whole, at several times its size); set HARDNEG_MAX_LABEL_BYTES to raise the limit.")


def utf8_lines(handle, path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file opened as UTF-8; bytes that are not UTF-8 (a file saved as UTF-16 or
    Latin-1) are one error naming the file. Not the line: text is decoded a block at a time, ahead of the lines
    read so far."""
    try:
        yield from enumerate(handle, start=1)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason}); save the file as UTF-8 (from a spreadsheet: "
                        f"'CSV UTF-8').") from None


def check_id(value: str, where: str, what: str = "id") -> str:
    """``value`` as an id: ids go into tab-separated qrels lines, so a tab, a line break or another control
    character in one is an error naming ``where``."""
    bad = sorted({repr(ch) for ch in value if unicodedata.category(ch) == "Cc"})
    if bad:
        raise DataError(f"{where}: {what} {value!r} holds the control character(s) {', '.join(bad)}; ids are "
                        f"written into tab-separated qrels lines: remove them.")
    return value


def _record_id(record: dict, path: Path, number: int) -> str:
    raw = record.get("_id", record.get("id"))
    if raw is None or not str(raw).strip():
        raise DataError(f"{path}:{number}: empty or missing id (expected an '_id' or 'id' field).")
    return check_id(str(raw), f"{path}:{number}")


@dataclass
class LoadStats:
    """What a loader left out, and why (printed by the CLI, kept by the experiment)."""

    empty_documents: list[str] = field(default_factory=list)
    queries_without_positives: list[str] = field(default_factory=list)
    missing_documents: list[tuple[str, str]] = field(default_factory=list)
    missing_queries: list[str] = field(default_factory=list)
    unknown_judgements: int = 0  # judgements dropped because their query or document is unknown

    def add(self, other: "LoadStats") -> None:
        """Count what another validation of the same data left out too (e.g. the CLI's, then the miner's)."""
        for name in ("empty_documents", "queries_without_positives", "missing_documents", "missing_queries"):
            getattr(self, name).extend(getattr(other, name))
        self.unknown_judgements += other.unknown_judgements


def load_corpus(path: str | Path, stats: LoadStats | None = None) -> list[Document]:
    """Documents from a BEIR ``corpus.jsonl`` or plain JSONL (``id``/``_id``, ``text``/``content``, ``title``).

    Duplicate or empty ids are an error; documents without text are skipped and counted in ``stats``.
    Other fields (and a ``meta`` object) go to the Document's meta.
    """
    path = Path(path)
    stats = stats if stats is not None else LoadStats()
    documents: list[Document] = []
    first_line: dict[str, int] = {}
    for number, record in read_jsonl_records(path):
        doc_id = _record_id(record, path, number)
        if doc_id in first_line:
            raise DataError(f"{path}:{number}: duplicate document id '{doc_id}' (first on line {first_line[doc_id]}).")
        first_line[doc_id] = number
        text = record.get("text", record.get("content")) or ""
        if not str(text).strip():
            stats.empty_documents.append(doc_id)
            continue
        if not isinstance(record.get("meta") or {}, dict):
            raise DataError(f"{path}:{number}: 'meta' must be a JSON object, got {type(record['meta']).__name__}.")
        meta = dict(record.get("meta") or {})
        meta.update({k: v for k, v in record.items() if k not in {"_id", "id", "text", "content", "meta"}})
        if not meta.get("title"):
            meta.pop("title", None)
        documents.append(Document(id=doc_id, content=str(text), meta=meta))
    if stats.empty_documents:
        logger.warning("%s: skipped %d document(s) without text, e.g. %s", path, len(stats.empty_documents),
                       stats.empty_documents[:3])
    return documents


def load_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text from a JSONL file of {"_id", "text"}; empty or duplicate ids and empty texts are errors."""
    path = Path(path)
    check_size(path, "queries")
    queries: dict[str, str] = {}
    for number, record in read_jsonl_records(path):
        query_id = _record_id(record, path, number)
        if query_id in queries:
            raise DataError(f"{path}:{number}: duplicate query id '{query_id}'.")
        text = str(record.get("text") or "").strip()
        if not text:
            raise DataError(f"{path}:{number}: query '{query_id}' has no text.")
        queries[query_id] = text
    return queries


def load_qrels(path: str | Path) -> Qrels:
    """Query id -> {document id: relevance} from a TSV with a header line (BEIR qrels)."""
    path = Path(path)
    check_size(path, "qrels")
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader((line for _, line in utf8_lines(handle, path)), delimiter="\t")
        for number, row in enumerate(rows, start=1):
            if number == 1 and row and not _is_grade(row[-1]):
                continue  # header
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise DataError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score', got {row!r}.")
            query_id, doc_id, score = row[0].strip(), row[1].strip(), row[-1].strip()
            if not query_id or not doc_id:
                raise DataError(f"{path}:{number}: empty query or document id.")
            qrels.setdefault(query_id, {})[doc_id] = parse_grade(score, f"{path}:{number}")
    return qrels


def _is_grade(value: str) -> bool:
    try:
        parse_grade(value, "")
    except DataError:
        return False
    return True


# The highest grade accepted: nDCG's gain is 2^grade - 1, which a larger grade would overflow or make meaningless.
MAX_GRADE = 100


def parse_grade(value: object, where: str) -> int:
    """A relevance grade as an integer from 0 to ``MAX_GRADE`` (``2``, ``"1"``, ``"1.0"``), read exactly; anything
    else is a DataError naming ``where``."""
    hint = f"give an integer relevance grade from 0 (not relevant) to {MAX_GRADE} (1, 2, ... = more relevant)"
    if isinstance(value, bool):
        raise DataError(f"{where}: grade {value!r} is not a number; {hint}.")
    try:
        grade = int(str(value).strip()) if not isinstance(value, float) else None
    except ValueError:
        grade = None
    if grade is None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: grade {value!r} is not a number; {hint}.") from None
        if not math.isfinite(number) or number != int(number):
            raise DataError(f"{where}: grade {value!r} is not a whole finite number; {hint}.")
        grade = int(number)
    if not 0 <= grade <= MAX_GRADE:
        raise DataError(f"{where}: grade {value!r} is out of range; {hint}.")
    return grade


def validate_qrels(
    qrels: Qrels,
    queries: dict[str, str],
    document_ids: set[str],
    *,
    on_missing: OnMissing = "error",
    stats: LoadStats | None = None,
    min_relevance: int = 1,
) -> Qrels:
    """Qrels restricted to known queries and documents, with only queries that have a positive (a grade of at
    least ``min_relevance``); the grades are kept as they are.

    With ``on_missing="error"`` a judgement naming an unknown query or document is an error listing
    examples; with ``"skip"`` it is dropped and counted. Queries without any positive are always
    dropped and counted: there is nothing to learn or measure from them.
    """
    if min_relevance < 1:
        raise ValueError(f"min_relevance must be >= 1 (a grade of 0 means not relevant), got {min_relevance}.")
    stats = stats if stats is not None else LoadStats()
    missing_queries = sorted(q for q in qrels if q not in queries)
    missing_docs = sorted((q, d) for q, judged in qrels.items() for d in judged if d not in document_ids)
    if (missing_queries or missing_docs) and on_missing == "error":
        parts = []
        if missing_queries:
            parts.append(f"{len(missing_queries)} unknown query id(s), e.g. {missing_queries[:5]}")
        if missing_docs:
            parts.append(f"{len(missing_docs)} judgement(s) of unknown documents, e.g. {missing_docs[:5]}")
        raise DataError(
            "The relevance judgements name data that is not loaded: " + "; ".join(parts)
            + ". Fix the data, or drop and count them: on_missing='skip' (mine: --skip-missing; experiment "
            "config: on_missing: skip)."
        )
    stats.missing_queries.extend(missing_queries)
    stats.missing_documents.extend(missing_docs)
    cleaned: Qrels = {}
    for query_id, judged in qrels.items():
        if query_id not in queries:
            stats.unknown_judgements += len(judged)
            continue
        kept = {d: s for d, s in judged.items() if d in document_ids}
        stats.unknown_judgements += len(judged) - len(kept)
        if not any(s >= min_relevance for s in kept.values()):
            stats.queries_without_positives.append(query_id)
            continue
        cleaned[query_id] = kept
    if stats.queries_without_positives:
        logger.warning("Skipped %d query(ies) without a relevant document, e.g. %s",
                       len(stats.queries_without_positives), stats.queries_without_positives[:3])
    return cleaned


@dataclass
class BeirSplit:
    """A BEIR data set's corpus with one split's queries and judgements, validated."""

    corpus: list[Document]
    queries: dict[str, str]
    qrels: Qrels
    stats: LoadStats


def load_beir(folder: str | Path, split: str = "test", *, on_missing: OnMissing = "error",
              min_relevance: int = 1) -> BeirSplit:
    """Corpus, the split's queries (only those with a judgement of at least ``min_relevance`` in
    ``qrels/<split>.tsv``) and validated qrels (every grade kept)."""
    folder = Path(folder)
    stats = LoadStats()
    corpus = load_corpus(folder / "corpus.jsonl", stats)
    all_queries = load_queries(folder / "queries.jsonl")
    raw_qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
    qrels = validate_qrels(raw_qrels, all_queries, {d.id for d in corpus}, on_missing=on_missing, stats=stats,
                           min_relevance=min_relevance)
    queries = {q: all_queries[q] for q in qrels}
    return BeirSplit(corpus=corpus, queries=queries, qrels=qrels, stats=stats)

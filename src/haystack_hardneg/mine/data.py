"""What mining works on: the documents and queries as ids, texts and ensemble vectors, and the (query, positive)
pairs to mine. Plain numpy; shared by the candidate providers, the selection step and ``mine_negatives``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass
class MiningData:
    """Everything mining needs, as arrays and ids.

    :param doc_vectors: unit-length ensemble vectors, one row per document.
    :param member_slices: for ``combine="concat"`` ensembles, the columns of each member inside the ensemble
        vector (per-member cosines are then recovered exactly, without re-embedding); ``None`` otherwise.
    :param member_weights: the normalised member weights (matching ``member_slices``).
    :param positives: query id -> ids of its positives: the documents to mine negatives for.
    :param relevant: query id -> {document id: grade} of every document judged relevant to it (a grade above 0),
        none of which is ever its negative; ``None``: its positives, at grade 1.
    """

    doc_ids: list[str]
    doc_texts: list[str]
    doc_vectors: np.ndarray
    query_ids: list[str]
    query_texts: list[str]
    query_vectors: np.ndarray
    positives: dict[str, list[str]]
    member_slices: list[tuple[int, int]] | None = None
    member_weights: list[float] | None = None
    relevant: dict[str, dict[str, int]] | None = None

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.doc_vectors) or len(self.doc_ids) != len(self.doc_texts):
            raise ValueError(
                f"{len(self.doc_ids)} document ids, {len(self.doc_texts)} texts, {len(self.doc_vectors)} vectors."
            )
        if len(self.query_ids) != len(self.query_vectors) or len(self.query_ids) != len(self.query_texts):
            raise ValueError("Query ids, texts and vectors differ in number.")
        if len(set(self.doc_ids)) != len(self.doc_ids):
            raise ValueError("Document ids must be unique.")
        if self.doc_vectors.shape[1:] != self.query_vectors.shape[1:]:
            raise ValueError(
                f"Documents are {self.doc_vectors.shape[1]}-d but queries {self.query_vectors.shape[1]}-d: "
                f"embed both with the same ensemble."
            )
        for name, vectors in (("document", self.doc_vectors), ("query", self.query_vectors)):
            norms = np.linalg.norm(vectors, axis=1)
            bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
            if len(bad):
                ids = self.doc_ids if name == "document" else self.query_ids
                raise ValueError(
                    f"{len(bad)} {name} vector(s) are zero or contain NaN, e.g. {[ids[i] for i in bad[:5]]}; "
                    f"re-embed them or leave them out."
                )

    def member_vectors(self, member: int, which: Literal["doc", "query"]) -> np.ndarray:
        if self.member_slices is None:
            raise ValueError(
                "Per-member vectors are only recoverable from a combine='concat' ensemble; this one has none."
            )
        start, end = self.member_slices[member]
        vectors = (self.doc_vectors if which == "doc" else self.query_vectors)[:, start:end]
        return vectors / np.sqrt(self.member_weights[member])


@dataclass
class Pairs:
    """The (query, positive) pairs to mine, query by query: the query's row, the positive's document index and
    the positive's ensemble score; and, per pair, the positive the false-negative guard compares candidates with
    (``guard_positives``, ``guard_scores``): the pair's own unless ``reference`` chose the query's lowest- or
    highest-scoring positive."""

    rows: np.ndarray
    positives: np.ndarray
    scores: np.ndarray
    guard_positives: np.ndarray | None = None
    guard_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.guard_positives is None:
            self.guard_positives, self.guard_scores = self.positives, self.scores

    @classmethod
    def of(cls, data: MiningData, positives: list[np.ndarray], *, reference: str = "pair",
           every_positive: list[np.ndarray] | None = None) -> "Pairs":
        """The pairs of each query's ``positives``; with ``reference="lowest"`` (``"highest"``) the guard compares
        with the lowest (highest) ensemble score among ``every_positive`` of the query (default: ``positives``),
        sampled out or not."""
        rows = np.repeat(np.arange(len(data.query_ids)), [len(p) for p in positives])
        docs = np.concatenate(positives) if positives else np.zeros(0, dtype=np.int64)
        pairs = cls(rows, docs, np.einsum("pd,pd->p", data.query_vectors[rows], data.doc_vectors[docs]))
        if reference in ("lowest", "highest"):
            chosen = [_reference_positive(data, row, own, highest=reference == "highest")
                      for row, own in enumerate(every_positive or positives)]
            pairs.guard_positives = np.array([chosen[r][0] for r in rows.tolist()], dtype=np.int64)
            pairs.guard_scores = np.array([chosen[r][1] for r in rows.tolist()], dtype=pairs.scores.dtype)
        elif reference != "pair":
            raise ValueError(f"reference must be 'pair', 'lowest' or 'highest', got {reference!r}.")
        return pairs

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self, data: MiningData, pair: int) -> tuple[str, str]:
        return data.query_ids[self.rows[pair]], data.doc_ids[self.positives[pair]]


def _reference_positive(data: MiningData, row: int, positives: np.ndarray, *, highest: bool) -> tuple[int, float]:
    """The query's positive with the lowest (``highest``: the highest) ensemble score, and that score ((-1, 0.0)
    without positives)."""
    if len(positives) == 0:
        return -1, 0.0
    scores = data.doc_vectors[positives] @ data.query_vectors[row]
    at = int(np.argmax(scores) if highest else np.argmin(scores))
    return int(positives[at]), float(scores[at])


def positives_by_chunk(qrels: dict[str, dict[str, int]], query_ids: list[str], query_vectors: np.ndarray,
                       doc_ids: list[str], parents: list[str], doc_vectors: np.ndarray, min_relevance: int = 1
                       ) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Judgements of whole documents carried to the indexed units, which may be their chunks (``parents[i]``: the
    document unit ``i`` belongs to, its own id when unchunked).

    A judged document's positive for a query is its unit the ensemble scores highest for that query (its best
    chunk, as a chunked first stage ranks it), when its grade is at least ``min_relevance``; every unit of a
    document judged relevant carries its grade in ``relevant`` and is never a negative.
    Returns (positives, relevant) as ``MiningData`` takes them."""
    units: dict[str, list[int]] = {}
    for index, parent in enumerate(parents):
        units.setdefault(parent, []).append(index)
    index_of = {d: i for i, d in enumerate(doc_ids)}
    row_of = {q: i for i, q in enumerate(query_ids)}
    positives: dict[str, list[str]] = {}
    relevant: dict[str, dict[str, int]] = {}
    for query_id, judged in qrels.items():
        vector = query_vectors[row_of[query_id]]
        positives[query_id], relevant[query_id] = [], {}
        for document, grade in judged.items():
            unit = index_of.get(document)  # a judged id that is itself indexed is its own positive
            own = sorted({*units.get(document, []), *([unit] if unit is not None else [])})
            if grade <= 0 or not own:
                continue
            relevant[query_id].update((doc_ids[i], grade) for i in own)
            if grade >= min_relevance:
                best = unit if unit is not None else own[int(np.argmax(doc_vectors[own] @ vector))]
                positives[query_id].append(doc_ids[best])
    return positives, relevant

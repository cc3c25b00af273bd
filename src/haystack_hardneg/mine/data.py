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
    :param positives: query id -> ids of its relevant documents.
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
    the positive's ensemble score."""

    rows: np.ndarray
    positives: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, data: MiningData, positives: list[np.ndarray]) -> "Pairs":
        rows = np.repeat(np.arange(len(data.query_ids)), [len(p) for p in positives])
        docs = np.concatenate(positives) if positives else np.zeros(0, dtype=np.int64)
        return cls(rows, docs, np.einsum("pd,pd->p", data.query_vectors[rows], data.doc_vectors[docs]))

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self, data: MiningData, pair: int) -> tuple[str, str]:
        return data.query_ids[self.rows[pair]], data.doc_ids[self.positives[pair]]

"""The lexical member as Haystack components: write the BM25 index, retrieve from it, join it with the dense
ensemble's results (a hybrid first stage)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from haystack_hardneg.files import readable_directory
from haystack_hardneg.ingest.text import document_text
from haystack_hardneg.scoring.fusion import fuse_rankings
from haystack_hardneg.store.lexical import LexicalIndex
from haystack_hardneg.store.qdrant import drop_identical_duplicates

logger = logging.getLogger(__name__)


@component
class LexicalIndexWriter:
    """
    Builds the BM25 index (bm25s, English stemming and stop words) of the Documents it gets, in ``index_path``.

    The index is rebuilt from the Documents of each run (BM25 statistics are corpus-wide), so give it the whole
    corpus at once, as the indexing pipeline does. Documents without content are left out.
    """

    def __init__(self, *, index_path: str, language: str | None = "english",
                 meta_fields_to_index: list[str] | None = None, separator: str = "\n"):
        """
        :param index_path: the index folder (replaced atomically).
        :param language: the Snowball stemmer's language (with English stop words for ``english``); ``None``:
            no stemming.
        :param meta_fields_to_index: meta fields indexed before the content (e.g. ``["title"]``).
        :param separator: between those fields and the content.
        """
        self.index_path = index_path
        self.language = language
        self.meta_fields_to_index = list(meta_fields_to_index or [])
        self.separator = separator

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, index_path=self.index_path, language=self.language,
                               meta_fields_to_index=self.meta_fields_to_index, separator=self.separator)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LexicalIndexWriter":
        return default_from_dict(cls, data)

    @component.output_types(documents_written=int)
    def run(self, documents: list[Document]) -> dict[str, int]:
        # As the Qdrant writer: identical repeats (the same file indexed twice) are written once, and a batch with
        # nothing to index (every source failed) writes nothing and leaves an existing index in place.
        documents = drop_identical_duplicates([d for d in documents if d.content and d.content.strip()])
        if not documents:
            path = Path(self.index_path).expanduser()
            if readable_directory(path).exists():
                # Said out loud because the dense side may not agree: a store opened with recreate_index was
                # emptied, and hybrid queries would then join BM25 hits that Qdrant no longer holds.
                logger.warning("Nothing to index: the BM25 index at %s is kept as it was (if its Qdrant collection "
                               "was recreated, rebuild both).", path)
            return {"documents_written": 0}
        index = LexicalIndex.build(
            [d.id for d in documents],
            [document_text(d, self.meta_fields_to_index, self.separator) for d in documents],
            [{"id": d.id, "content": d.content, "meta": d.meta} for d in documents],
            language=self.language,
        )
        index.save(Path(self.index_path).expanduser())
        return {"documents_written": len(documents)}


@component
class LexicalRetriever:
    """
    Retrieves Documents from a BM25 index written by ``LexicalIndexWriter`` (scores are BM25's).
    """

    def __init__(self, *, index_path: str, top_k: int = 10):
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}.")
        self.index_path = index_path
        self.top_k = top_k
        self._index: LexicalIndex | None = None

    def warm_up(self) -> None:
        if self._index is None:
            self._index = LexicalIndex.load(Path(self.index_path).expanduser())

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, index_path=self.index_path, top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LexicalRetriever":
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None) -> dict[str, list[Document]]:
        return {"documents": self.retrieve_many([query], top_k)[0]}

    def retrieve_many(self, queries: list[str], top_k: int | None = None) -> list[list[Document]]:
        """``run`` for many queries at once (bm25s scores them together): each query's documents."""
        if self._index is None:
            raise RuntimeError("LexicalRetriever was not warmed up: call warm_up() before run().")
        stored = self._index.documents
        return [[Document(id=stored[i]["id"], content=stored[i]["content"], meta=dict(stored[i].get("meta") or {}),
                          score=score) for i, score in found]
                for found in self._index.search(list(queries), top_k or self.top_k)]


@component
class HybridJoiner:
    """
    Joins the dense ensemble's and the lexical member's results: ``w * norm(bm25) + (1 - w) * norm(dense)``,
    each list min-max normalised over its own results (a document missing from one list gets 0 from it).

    Haystack's DocumentJoiner fuses by rank or keeps the higher of two normalised scores; a weighted sum of
    normalised scores has one number to validate on training queries (what it gave on SciFact is in the README's
    benchmarks).
    """

    def __init__(self, *, lexical_weight: float = 0.5, top_k: int | None = None):
        """
        :param lexical_weight: ``w`` above; 0 is the dense ensemble alone, 1 BM25 alone.
        :param top_k: how many joined documents to return (``None``: all).
        """
        if not 0.0 <= lexical_weight <= 1.0:
            raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}.")
        self.lexical_weight = lexical_weight
        self.top_k = top_k

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, lexical_weight=self.lexical_weight, top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HybridJoiner":
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, dense_documents: list[Document], lexical_documents: list[Document],
            top_k: int | None = None) -> dict[str, list[Document]]:
        by_id: dict[str, Document] = {}
        for doc in [*dense_documents, *lexical_documents]:
            by_id.setdefault(doc.id, doc)  # the dense copy (from the store) first: it carries the vector's meta
        scores = fuse_rankings({d.id: float(d.score or 0.0) for d in dense_documents},
                               {d.id: float(d.score or 0.0) for d in lexical_documents}, self.lexical_weight)
        ranked = sorted(scores, key=lambda d: -scores[d])
        limit = top_k or self.top_k
        return {"documents": [replace(by_id[d], score=scores[d]) for d in ranked[:limit]]}

"""A BM25 index (bm25s): the ensemble's lexical member beside the Qdrant collection (English stemming), and the
lexical scorer of mining (no stemming, English stop words; ``mine/providers.py``).

Dense models miss exact terms (gene names, drug codes, part numbers) that BM25 catches, and the two fail on
different queries: on SciFact, BM25 with stemming scores about as well as the dense ensemble and their fusion
beats both. bm25s indexes are not incremental, so the index is rebuilt from all documents it is given and
written as a folder: built beside the old one, then swapped in by two renames (an interrupted build leaves the
previous index as it was).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_directory, read_jsonl, readable_directory

SETTINGS_FILE = "lexical.json"
DOCUMENTS_FILE = "documents.jsonl"


def language_stopwords(language: str | None) -> str | None:
    """The stop words an index of ``language`` drops when none are named: English's for English, else none."""
    return "en" if language == "english" else None


def _tokenize(texts: list[str], language: str | None, stopwords: str | None, show_progress: bool = False):
    bm25s = require("bm25s", "The BM25 member")
    stemmer = None
    if language:
        Stemmer = require("Stemmer", "BM25 stemming")
        stemmer = Stemmer.Stemmer(language)
    return bm25s.tokenize(texts, stopwords=stopwords, stemmer=stemmer, return_ids=False, show_progress=show_progress)


class LexicalIndex:
    """BM25 over ``texts`` keyed by ``ids``, with each document's content and meta kept for retrieval."""

    def __init__(self, retriever, ids: list[str], documents: list[dict[str, Any]], language: str | None,
                 stopwords: str | None):
        self._retriever = retriever
        self.ids = ids
        self.documents = documents
        self.language = language
        self.stopwords = stopwords

    @classmethod
    def build(cls, ids: list[str], texts: list[str], documents: list[dict[str, Any]] | None = None, *,
              language: str | None = "english", stopwords: str | None = "auto",
              show_progress: bool = False) -> "LexicalIndex":
        """``texts`` are what BM25 sees (e.g. title + content); ``documents`` what retrieval returns.

        :param language: the Snowball stemmer's language; ``None``: no stemming.
        :param stopwords: the stop words dropped from texts and queries, by bm25s name (``"en"``), or ``None``;
            ``"auto"``: English stop words for ``language="english"``, none otherwise.
        :param show_progress: bm25s's progress bars while tokenizing and indexing.
        """
        bm25s = require("bm25s", "The BM25 member")
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts.")
        if len(set(ids)) != len(ids):
            raise ValueError("Document ids must be unique in a lexical index.")
        if not ids:
            raise ValueError("No documents to index.")
        stopwords = language_stopwords(language) if stopwords == "auto" else stopwords
        retriever = bm25s.BM25()
        retriever.index(_tokenize(list(texts), language, stopwords, show_progress), show_progress=show_progress)
        documents = documents if documents is not None else [{"id": i, "content": t} for i, t in zip(ids, texts)]
        return cls(retriever, list(ids), documents, language, stopwords)

    def search(self, queries: list[str], k: int, *, batch: int = 1024) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` (document position, BM25 score) pairs, best first; documents sharing no term
        with the query (score 0) are not returned."""
        k = min(k, len(self.ids))
        if not queries or k <= 0:
            return [[] for _ in queries]
        known = self._known_terms(queries)
        # bm25s refuses a query none of whose terms it knows; such a query has no lexical match at all.
        asked = [row for row, tokens in enumerate(known) if tokens]
        results: list[list[tuple[int, float]]] = [[] for _ in queries]
        for start in range(0, len(asked), batch):  # batches bound the k-wide arrays bm25s returns
            rows = asked[start:start + batch]
            found, scores = self._retriever.retrieve([known[row] for row in rows], k=k, show_progress=False)
            for row, row_found, row_scores in zip(rows, found, scores):
                results[row] = [(int(i), float(s)) for i, s in zip(row_found, row_scores) if s > 0]
        return results

    def _known_terms(self, queries: list[str]) -> list[list[str]]:
        """Each query's terms as the index tokenizes them, those it does not know left out."""
        vocabulary = self._retriever.vocab_dict
        return [[t for t in tokens if t in vocabulary]
                for tokens in _tokenize(list(queries), self.language, self.stopwords)]

    def scores(self, query: str) -> np.ndarray:
        """The query's BM25 score for every document, in index order (all 0 when it has no known term)."""
        known = self._known_terms([query])[0]
        if not known:  # bm25s cannot score an empty query
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the index folder atomically: built beside, then swapped in."""
        with atomic_directory(path) as staging:
            self._retriever.save(str(staging), show_progress=False)
            with open(staging / DOCUMENTS_FILE, "w", encoding="utf-8") as out:
                for document in self.documents:
                    out.write(json.dumps(document, ensure_ascii=False) + "\n")
            (staging / SETTINGS_FILE).write_text(json.dumps({"language": self.language, "stopwords": self.stopwords,
                                                              "documents": len(self.ids)}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LexicalIndex":
        bm25s = require("bm25s", "The BM25 member")
        requested = Path(path)
        path = readable_directory(requested)
        if not (path / SETTINGS_FILE).is_file():
            raise FileNotFoundError(f"No lexical index at {requested} (build one with the indexing pipeline's "
                                    f"lexical writer or LexicalIndex.build(...).save(path)).")
        settings = json.loads((path / SETTINGS_FILE).read_text())
        retriever = bm25s.BM25.load(str(path), show_progress=False)
        documents = read_jsonl(path / DOCUMENTS_FILE)
        # An index saved without a stop-word setting dropped its language's stop words.
        stopwords = settings.get("stopwords", language_stopwords(settings["language"]))
        return cls(retriever, [d["id"] for d in documents], documents, settings["language"], stopwords)

"""A BM25 index beside the Qdrant collection: the ensemble's lexical member (bm25s, English stemming).

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

from haystack_hardneg.files import atomic_directory, read_jsonl, readable_directory

SETTINGS_FILE = "lexical.json"
DOCUMENTS_FILE = "documents.jsonl"


def _tokenize(texts: list[str], language: str | None):
    import bm25s

    stemmer = None
    if language:
        import Stemmer

        stemmer = Stemmer.Stemmer(language)
    return bm25s.tokenize(texts, stopwords="en" if language == "english" else None, stemmer=stemmer,
                          return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 over ``texts`` keyed by ``ids``, with each document's content and meta kept for retrieval."""

    def __init__(self, retriever, ids: list[str], documents: list[dict[str, Any]], language: str | None):
        self._retriever = retriever
        self.ids = ids
        self.documents = documents
        self.language = language

    @classmethod
    def build(cls, ids: list[str], texts: list[str], documents: list[dict[str, Any]] | None = None, *,
              language: str | None = "english") -> "LexicalIndex":
        """``texts`` are what BM25 sees (e.g. title + content); ``documents`` what retrieval returns."""
        import bm25s

        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts.")
        if len(set(ids)) != len(ids):
            raise ValueError("Document ids must be unique in a lexical index.")
        if not ids:
            raise ValueError("No documents to index.")
        retriever = bm25s.BM25()
        retriever.index(_tokenize(list(texts), language), show_progress=False)
        documents = documents if documents is not None else [{"id": i, "content": t} for i, t in zip(ids, texts)]
        return cls(retriever, list(ids), documents, language)

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` (document position, BM25 score) pairs, best first; documents sharing no term
        with the query (score 0) are not returned."""
        k = min(k, len(self.ids))
        if not queries or k <= 0:
            return [[] for _ in queries]
        tokens = _tokenize(list(queries), self.language)
        results = []
        for query_tokens in tokens:
            # bm25s refuses a query none of whose terms it knows; such a query has no lexical match at all.
            known = [t for t in query_tokens if t in self._retriever.vocab_dict]
            if not known:
                results.append([])
                continue
            found, scores = self._retriever.retrieve([known], k=k, show_progress=False, n_threads=1)
            results.append([(int(i), float(s)) for i, s in zip(found[0], scores[0]) if s > 0])
        return results

    def save(self, path: str | Path) -> Path:
        """Write the index folder atomically: built beside, then swapped in."""
        with atomic_directory(path) as staging:
            self._retriever.save(str(staging), show_progress=False)
            with open(staging / DOCUMENTS_FILE, "w", encoding="utf-8") as out:
                for document in self.documents:
                    out.write(json.dumps(document, ensure_ascii=False) + "\n")
            (staging / SETTINGS_FILE).write_text(json.dumps({"language": self.language, "documents": len(self.ids)}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LexicalIndex":
        import bm25s

        requested = Path(path)
        path = readable_directory(requested)
        if not (path / SETTINGS_FILE).is_file():
            raise FileNotFoundError(f"No lexical index at {requested} (build one with the indexing pipeline's "
                                    f"lexical writer or LexicalIndex.build(...).save(path)).")
        settings = json.loads((path / SETTINGS_FILE).read_text())
        retriever = bm25s.BM25.load(str(path), show_progress=False)
        documents = read_jsonl(path / DOCUMENTS_FILE)
        return cls(retriever, [d["id"] for d in documents], documents, settings["language"])

"""Reading stored ensemble vectors back out of Qdrant for mining, page by page, without re-embedding."""

from __future__ import annotations

from typing import Collection, Iterator

import numpy as np
from haystack import Document
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from tqdm.auto import tqdm

from haystack_hardneg.embed.components import ENSEMBLE_META_KEY
from haystack_hardneg.store.qdrant_access import stored_documents


def iter_stored_documents(store: QdrantDocumentStore) -> Iterator[Document]:
    """Every document of the collection with its vector, scrolled ``store.scroll_size`` points at a time.

    qdrant-haystack's public ``filter_documents`` builds one list of every Document; its generator (used here)
    pages through the collection the same way against local mode and a server, holding one page at a time.
    """
    yield from stored_documents(store)


def read_stored_vectors(
    store: QdrantDocumentStore, *, expected_ensemble_ids: Collection[str] | None = None, progress_bar: bool = True
) -> tuple[list[Document], np.ndarray]:
    """The collection's documents (without their vectors) and their vectors as one float32 matrix.

    :param expected_ensemble_ids: when given, every stored vector must carry one of these ids (an ensemble's
        ``identity.key``).
    """
    total = store.count_documents()
    vectors = np.empty((total, store.embedding_dim), dtype=np.float32)
    documents: list[Document] = []
    others: set[str] = set()
    for i, doc in enumerate(tqdm(iter_stored_documents(store), total=total, desc="Reading stored vectors",
                                 unit="doc", disable=not progress_bar)):
        if doc.embedding is None:
            raise ValueError(f"Stored document '{doc.id}' has no vector.")
        if i >= len(vectors):  # written to while we read: grow (doubling) rather than fail
            vectors = np.concatenate([vectors, np.empty((max(1, len(vectors)), vectors.shape[1]), dtype=np.float32)])
        vectors[i] = doc.embedding
        found = doc.meta.get(ENSEMBLE_META_KEY)
        if expected_ensemble_ids is not None and found not in expected_ensemble_ids:
            others.add(str(found))
        documents.append(Document(id=doc.id, content=doc.content, meta=doc.meta))
    if others:
        raise ValueError(
            f"Collection '{store.index}' holds vectors of ensemble(s) {sorted(others)[:3]}, but queries would be "
            f"embedded by ensemble {next(iter(expected_ensemble_ids))}; their scores would not be comparable."
        )
    return documents, vectors[: len(documents)]

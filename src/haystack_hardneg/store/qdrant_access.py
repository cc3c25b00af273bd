"""The one place that reaches into qdrant-haystack's private attributes, each where qdrant-haystack (13.x) has no
public API for what is needed:

- the ``qdrant_client`` it opens lazily (``_initialize_client``, ``_client``): for a batch query
  (``query_batch_points``), a scroll of payloads without vectors, and the vector size of an existing collection;
- its document generator (``_get_documents_generator``): the public ``filter_documents`` builds one list of every
  Document, the generator pages through the collection holding one page at a time;
- a retriever's store (``_document_store``): Qdrant's retrievers keep no public accessor for it.

Everything else goes through the public API (``count_documents``, ``count_documents_by_filter``,
``write_documents``, ``close``, the retrievers' ``run``)."""

from __future__ import annotations

from typing import Any, Iterator

from haystack import Document
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore


def qdrant_client(store: QdrantDocumentStore, *, check: bool = True) -> Any:
    """The store's client, opened if it is not yet. Opening checks the collection against the store's settings;
    with ``check=False`` a collection of another vector size is not an error here (the client is open all the
    same, to read what the collection holds); ``None`` where the client could not be opened."""
    if store._client is None:  # noqa: SLF001
        try:
            store._initialize_client()  # noqa: SLF001
        except ValueError:
            if check:
                raise
    return store._client  # noqa: SLF001


def stored_documents(store: QdrantDocumentStore) -> Iterator[Document]:
    """Every document of the collection with its vector, a page of ``store.scroll_size`` points at a time."""
    yield from store._get_documents_generator()  # noqa: SLF001


def retriever_store(component: Any) -> Any:
    """The document store of a writer (public ``document_store``) or of a Qdrant retriever (kept private)."""
    return getattr(component, "document_store", None) or getattr(component, "_document_store", None)

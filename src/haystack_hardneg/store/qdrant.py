"""Qdrant through qdrant-haystack: opening a store and writing ensemble vectors safely.

The same code runs against the embedded local mode (``location=":memory:"`` or ``path=...``) and a
Qdrant server or cluster (``url=...``): only the arguments of :func:`open_document_store` change.
"""

from __future__ import annotations

import atexit
import sqlite3
import weakref
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from haystack_hardneg.embed.components import ENSEMBLE_META_KEY
from haystack_hardneg.files import NO_ROOM
from haystack_hardneg.store.qdrant_access import qdrant_client

logger = logging.getLogger(__name__)


class StoreMismatchError(ValueError):
    """A collection holds vectors of another dimension or another ensemble than the ones being written."""


class DuplicateIdError(ValueError):
    """Two different documents in one write share an id."""


class StoreFullError(OSError):
    """The store could not take the rest of a write (a full disk): what it holds now, and that a re-run completes it."""


def _out_of_room(error: BaseException) -> bool:
    """Whether ``error`` is the storage refusing more data, as each backend says it."""
    if isinstance(error, sqlite3.OperationalError):
        # Qdrant's local mode persists through SQLite: SQLITE_FULL on a full disk, SQLITE_IOERR when a write is cut
        # short otherwise (a file-size or quota limit).
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
    if isinstance(error, OSError):
        return error.errno in NO_ROOM
    return "No space left on device" in str(error)  # a Qdrant server's answer


def _where(store: QdrantDocumentStore) -> str:
    place = store.url or store.path or store.location or ":memory:"
    return f"collection '{store.index}' at {place}"


def open_document_store(
    *,
    path: str | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
    index: str = "Document",
    embedding_dim: int,
    recreate_index: bool = False,
    progress_bar: bool = True,
    **kwargs: Any,
) -> QdrantDocumentStore:
    """A QdrantDocumentStore with cosine similarity; exactly one of ``path``, ``location``, ``url``.

    ``path`` is Qdrant's embedded local mode on disk, ``location=":memory:"`` the in-memory local mode,
    ``url`` a server or cluster (with ``api_key`` as a Secret, e.g. ``Secret.from_env_var("QDRANT_API_KEY")``).
    """
    given = {k: v for k, v in {"path": path, "location": location, "url": url}.items() if v is not None}
    if len(given) != 1:
        raise ValueError(f"Give exactly one of path=, location=, url= for the Qdrant store (got {sorted(given)}).")
    store = QdrantDocumentStore(
        **given,
        api_key=api_key,
        index=index,
        embedding_dim=embedding_dim,
        similarity="cosine",
        recreate_index=recreate_index,
        progress_bar=progress_bar,
        **kwargs,
    )
    _close_at_exit(store)
    return store


def _close_at_exit(store: QdrantDocumentStore) -> None:
    """Close a store still open when the interpreter exits, while it can: left to the client's ``__del__`` during
    shutdown, local mode prints an 'Exception ignored' traceback on every run that did not close it."""
    ref = weakref.ref(store)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(close)


def collection_vector_size(store: QdrantDocumentStore) -> int | None:
    """The vector size of the store's collection as it exists now, or ``None`` when there is none yet.

    Read through the store's own client: Qdrant's local mode on disk allows one client per folder.
    """
    client = qdrant_client(store, check=False)  # the store refuses a collection of another size: say so below
    if client is None or not client.collection_exists(store.index):
        return None
    vectors = client.get_collection(store.index).config.params.vectors
    if isinstance(vectors, dict):
        vectors = next(iter(vectors.values()))
    return int(vectors.size)


def check_store_matches(store: QdrantDocumentStore, ensemble_id: str, dimension: int) -> None:
    """Raise StoreMismatchError unless the collection is empty or holds only this ensemble's vectors."""
    if store.embedding_dim != dimension:
        raise StoreMismatchError(
            f"The document store is configured with embedding_dim={store.embedding_dim} but ensemble "
            f"{ensemble_id} makes {dimension}-d vectors; set embedding_dim: {dimension}."
        )
    size = collection_vector_size(store)
    if size is not None and size != dimension:
        raise StoreMismatchError(
            f"Collection '{store.index}' holds {size}-d vectors but ensemble {ensemble_id} makes {dimension}-d "
            f"vectors. Use another index name, or replace the collection: `index --recreate` on the command line, "
            f"recreate_index=True in Python."
        )
    others = {"field": f"meta.{ENSEMBLE_META_KEY}", "operator": "!=", "value": ensemble_id}
    if store.count_documents_by_filter(others) == 0:
        return
    found, _ = store.get_metadata_field_unique_values(ENSEMBLE_META_KEY, size=5, filters=others)
    named = ", ".join(map(str, found)) or "vectors from an embedder that records no ensemble"
    raise StoreMismatchError(
        f"Collection '{store.index}' already holds vectors of another ensemble ({named}); this ensemble is "
        f"{ensemble_id}. Vectors of two ensembles are not comparable: use another index, or recreate it (the "
        f"embedding cache makes re-indexing fast)."
    )


def drop_identical_duplicates(documents: list[Document]) -> list[Document]:
    """Keep the first of identical documents sharing an id; different documents sharing an id are an error."""
    seen: dict[str, Document] = {}
    clashes: list[str] = []
    for doc in documents:
        first = seen.get(doc.id)
        if first is None:
            seen[doc.id] = doc
        elif (first.content, first.meta) != (doc.content, doc.meta):
            clashes.append(doc.id)
    if clashes:
        raise DuplicateIdError(
            f"{len(clashes)} id(s) are shared by different documents in one write, e.g. {clashes[:5]}. "
            f"Give each document a unique id (or let Haystack derive ids from content)."
        )
    return list(seen.values())


@component
class EnsembleDocumentWriter:
    """
    Writes ensemble-embedded Documents to a QdrantDocumentStore after checking that they fit.

    Before the first write it checks the collection: a collection of another vector size, or one holding
    vectors of another ensemble, is refused with an error naming both; vectors are never mixed silently.

    Duplicate ids, the documented policy: within one write, identical documents sharing an id are written
    once and *different* documents sharing an id are an error (nothing is written). Against what the
    collection already holds, ``policy`` decides: ``OVERWRITE`` (default, so re-indexing is idempotent),
    ``SKIP`` or ``FAIL``.

    Usage example:
    ```python
    from haystack_hardneg.store import EnsembleDocumentWriter, open_document_store

    store = open_document_store(path="qdrant-data", embedding_dim=384)
    writer = EnsembleDocumentWriter(document_store=store)
    writer.run(documents=embedded_documents)
    ```
    """

    def __init__(self, *, document_store: QdrantDocumentStore, policy: DuplicatePolicy = DuplicatePolicy.OVERWRITE):
        """
        :param document_store: the Qdrant store to write to.
        :param policy: what to do with ids the collection already holds (OVERWRITE, SKIP or FAIL).
        """
        if not isinstance(document_store, QdrantDocumentStore):
            raise TypeError(f"EnsembleDocumentWriter writes to a QdrantDocumentStore, not "
                            f"{type(document_store).__name__}.")
        if isinstance(policy, str):
            policy = DuplicatePolicy[policy.upper()]
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.OVERWRITE
        self.document_store = document_store
        self.policy = policy
        self._checked_ensembles: set[str] = set()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), policy=self.policy.name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleDocumentWriter":
        params = dict(data["init_parameters"])
        params["document_store"] = QdrantDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    @component.output_types(documents_written=int)
    def run(self, documents: list[Document]) -> dict[str, int]:
        """
        :param documents: Documents embedded by EnsembleDocumentEmbedder.
        :returns: ``documents_written``: how many Documents were written.
        """
        if not documents:
            return {"documents_written": 0}
        missing = [d.id for d in documents if d.embedding is None]
        if missing:
            raise ValueError(f"{len(missing)} document(s) have no embedding (e.g. {missing[:3]}); embed them first.")
        ensembles = {d.meta.get(ENSEMBLE_META_KEY) for d in documents}
        dims = {len(d.embedding) for d in documents}
        if len(ensembles) != 1 or None in ensembles or len(dims) != 1:
            raise StoreMismatchError(
                f"One write mixes vectors of {len(ensembles)} ensemble(s) {sorted(map(str, ensembles))} and "
                f"dimension(s) {sorted(dims)}; embed all documents with one EnsembleDocumentEmbedder."
            )
        ensemble_id, dimension = ensembles.pop(), dims.pop()
        if ensemble_id not in self._checked_ensembles:
            check_store_matches(self.document_store, ensemble_id, dimension)
            self._checked_ensembles.add(ensemble_id)
        unique = drop_identical_duplicates(documents)
        before = self.document_store.count_documents()
        try:
            written = self.document_store.write_documents(unique, policy=self.policy)
        except Exception as error:
            if not _out_of_room(error):
                raise
            raise self._full(error, before, len(unique)) from error
        return {"documents_written": written}

    def _full(self, error: BaseException, before: int, asked: int) -> StoreFullError:
        # Local mode persists each point before it applies it, so the count is what a re-opened store will hold.
        try:
            now = f"it now holds {self.document_store.count_documents()} document(s), {before} before this write"
        except Exception:  # the store may refuse even to count; the re-run advice holds all the same
            now = f"it held {before} document(s) before this write"
        reason = " ".join(str(error).split())[:200]
        return StoreFullError(
            f"Qdrant ran out of room while writing {asked} document(s) into {_where(self.document_store)} "
            f"({reason}); {now}. Free some space and run the same command again: document ids are stable, so it "
            "rewrites what is there and adds the rest.",
        )


def search_many(store: QdrantDocumentStore, vectors, top_k: int, *, batch_size: int = 64) -> list[list[Document]]:
    """Each query vector's ``top_k`` documents, as ``QdrantEmbeddingRetriever`` returns them one query at a time, but
    through Qdrant's batch query: one request per ``batch_size`` queries (local mode and server alike)."""
    from haystack_integrations.document_stores.qdrant.converters import (
        DENSE_VECTORS_NAME,
        convert_qdrant_point_to_haystack_document,
    )
    from qdrant_client.http import models as rest

    client = qdrant_client(store)
    sparse = store.use_sparse_embeddings
    using = DENSE_VECTORS_NAME if sparse else None
    found: list[list[Document]] = []
    for start in range(0, len(vectors), batch_size):
        requests = [rest.QueryRequest(query=[float(x) for x in vector], using=using, limit=top_k, with_payload=True)
                    for vector in vectors[start:start + batch_size]]
        responses = client.query_batch_points(collection_name=store.index, requests=requests)
        found.extend([convert_qdrant_point_to_haystack_document(point, use_sparse_embeddings=sparse)
                      for point in response.points] for response in responses)
    return found

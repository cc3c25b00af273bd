"""The indexing and query pipelines, built in Python or loaded from YAML.

    indexing: CorpusConverter -> DocumentCleaner -> DocumentChunker -> EnsembleDocumentEmbedder
              -> EnsembleDocumentWriter
                                                                  [-> LexicalIndexWriter]
    query:    EnsembleTextEmbedder -> QdrantEmbeddingRetriever [+ LexicalRetriever -> HybridJoiner] [-> ranker]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from haystack import Document, Pipeline
from haystack.components.preprocessors import DocumentCleaner
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from haystack_hardneg.embed.components import ENSEMBLE_META_KEY, EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.ingest.components import CorpusConverter, DocumentChunker
from haystack_hardneg.store.lexical_components import HybridJoiner, LexicalIndexWriter, LexicalRetriever
from haystack_hardneg.store.qdrant import EnsembleDocumentWriter
from haystack_hardneg.store.qdrant_access import qdrant_client, retriever_store

# Haystack refuses to deserialize classes from modules outside its allowlist; these are ours.
ALLOWED_MODULES = ["haystack_hardneg"]


def whole_document_chunker() -> DocumentChunker:
    """No chunking: labelled data judges whole documents, so the indexed unit must be the judged one."""
    return DocumentChunker(split_by="word", split_length=1_000_000, split_overlap=0)


def prepared_pipeline(converter: CorpusConverter | None = None, chunker: DocumentChunker | None = None) -> Pipeline:
    """converter -> cleaner -> chunker: the start every indexing pipeline shares, so that whatever reads the
    documents again (the experiment's portable state) sees them exactly as the stores were given them."""
    pipeline = Pipeline()
    pipeline.add_component("converter", converter or CorpusConverter())
    # keep_id: corpus ids (e.g. BEIR's) must survive cleaning, or judgements could not be matched.
    pipeline.add_component("cleaner", DocumentCleaner(keep_id=True, remove_repeated_substrings=False))
    pipeline.add_component("chunker", chunker or DocumentChunker())
    pipeline.connect("converter.documents", "cleaner.documents")
    pipeline.connect("cleaner.documents", "chunker.documents")
    return pipeline


def prepared_documents(sources: list[Any], *, converter: CorpusConverter | None = None,
                       chunker: DocumentChunker | None = None) -> list[Document]:
    """The documents the indexing pipelines write, converted, cleaned and chunked exactly as they do them."""
    return prepared_pipeline(converter, chunker).run({"converter": {"sources": sources}})["chunker"]["documents"]


def build_indexing_pipeline(
    embedder: EnsembleDocumentEmbedder,
    document_store: QdrantDocumentStore,
    *,
    converter: CorpusConverter | None = None,
    chunker: DocumentChunker | None = None,
    lexical_writer: LexicalIndexWriter | None = None,
) -> Pipeline:
    """Sources (URLs, HTML files, JSONL/BEIR corpora) -> main text -> clean -> chunk -> embed -> Qdrant, and,
    with a ``lexical_writer``, the same chunks into a BM25 index (the ensemble's lexical member).

    Run it with ``pipeline.run({"converter": {"sources": [...]}})``.
    """
    pipeline = prepared_pipeline(converter, chunker)
    pipeline.add_component("embedder", embedder)
    pipeline.add_component("writer", EnsembleDocumentWriter(document_store=document_store))
    pipeline.connect("chunker.documents", "embedder.documents")
    pipeline.connect("embedder.documents", "writer.documents")
    if lexical_writer is not None:
        pipeline.add_component("lexical_writer", lexical_writer)
        pipeline.connect("chunker.documents", "lexical_writer.documents")
    return pipeline


def build_lexical_indexing_pipeline(
    lexical_writer: LexicalIndexWriter,
    *,
    converter: CorpusConverter | None = None,
    chunker: DocumentChunker | None = None,
) -> Pipeline:
    """Sources -> main text -> clean -> chunk -> BM25 index only (a lexical member added to an existing index)."""
    pipeline = prepared_pipeline(converter, chunker)
    pipeline.add_component("lexical_writer", lexical_writer)
    pipeline.connect("chunker.documents", "lexical_writer.documents")
    return pipeline


def build_query_pipeline(
    text_embedder: EnsembleTextEmbedder,
    document_store: QdrantDocumentStore,
    *,
    top_k: int = 10,
    ranker: Any | None = None,
    lexical_retriever: LexicalRetriever | None = None,
    lexical_weight: float = 0.5,
) -> Pipeline:
    """Query text -> ensemble query vector -> Qdrant top_k [-> ranker].

    Run it with ``pipeline.run({"embedder": {"text": q}})``, plus ``{"ranker": {"query": q}}`` with a ranker.
    """
    if document_store.recreate_index:
        raise ValueError(
            "The query pipeline's document store has recreate_index=True: loading the pipeline would empty the "
            "collection. Open the store for querying without recreate_index."
        )
    pipeline = Pipeline()
    pipeline.add_component("embedder", text_embedder)
    pipeline.add_component("retriever", QdrantEmbeddingRetriever(document_store=document_store, top_k=top_k))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    candidates = "retriever.documents"
    if lexical_retriever is not None:
        if lexical_retriever.top_k != top_k:
            # Min-max normalisation depends on how long each list is: both must be cut at the same depth, as
            # when the weight was chosen.
            raise ValueError(f"The lexical retriever's top_k ({lexical_retriever.top_k}) must equal the "
                             f"pipeline's top_k ({top_k}).")
        pipeline.add_component("lexical", lexical_retriever)
        pipeline.add_component("joiner", HybridJoiner(lexical_weight=lexical_weight, top_k=top_k))
        pipeline.connect("retriever.documents", "joiner.dense_documents")
        pipeline.connect("lexical.documents", "joiner.lexical_documents")
        candidates = "joiner.documents"
    if ranker is not None:
        pipeline.add_component("ranker", ranker)
        pipeline.connect(candidates, "ranker.documents")
    return pipeline


def load_pipeline(source: str | Path) -> Pipeline:
    """Load a YAML pipeline (a file path or YAML text) that uses this package's components.

    Equivalent to ``Pipeline.loads(text, allowed_modules=["haystack_hardneg"])``: only our modules are added to
    Haystack's deserialization allowlist, for this call only.
    """
    text = Path(source).read_text(encoding="utf-8") if _is_path(source) else str(source)
    return Pipeline.loads(text, allowed_modules=ALLOWED_MODULES)


def _is_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    return "\n" not in source and Path(source).expanduser().is_file()


def check_query_embedder_matches_store(pipeline: Pipeline) -> None:
    """Refuse a query pipeline whose ensemble is not the one that embedded its Qdrant collection (other members,
    or weights at the same dimension give vectors in another space: the ranking would be meaningless, with
    no error from Qdrant). Reads one count from the store (and a few points when it is 0); documents written by other
    tools carry no ensemble id and are not judged."""

    components = dict(pipeline.walk())
    embedder = next((c for c in components.values() if isinstance(c, EnsembleTextEmbedder)), None)
    retriever = next((c for c in components.values() if isinstance(c, QdrantEmbeddingRetriever)), None)
    if embedder is None or retriever is None:
        return
    store = retriever_store(retriever)
    embedder.warm_up()
    identity = embedder.encoder.identity
    expected = identity.key
    if store.count_documents_by_filter({"field": f"meta.{ENSEMBLE_META_KEY}", "operator": "==",
                                        "value": identity.key}):
        return
    # None of ours: look at a few stored points (payload only) for the ensemble that wrote them, if any.
    points, _ = qdrant_client(store).scroll(collection_name=store.index, limit=20, with_payload=True,
                                            with_vectors=False)
    found = {(p.payload or {}).get("meta", {}).get(ENSEMBLE_META_KEY) for p in points} - {None}
    if found:
        raise ValueError(
            f"Collection '{store.index}' was embedded by another ensemble ({sorted(found)[0]}) than this pipeline's "
            f"query embedder ({expected}): other models or weights put queries in another vector space. "
            f"Query with the ensemble that indexed it, or index again with this one.")


def query_documents(pipeline: Pipeline, text: str) -> list[Document]:
    """One query through a query pipeline built by ``build_query_pipeline`` (or its YAML): the final documents."""
    nodes = pipeline.graph.nodes
    data: dict[str, dict[str, Any]] = {"embedder": {"text": text}}
    for name in ("lexical", "ranker"):
        if name in nodes:
            data[name] = {"query": text}
    result = pipeline.run(data)
    last = next(name for name in ("ranker", "joiner", "retriever") if name in nodes)
    return result[last]["documents"]


def run_queries(pipeline: Pipeline, queries: dict[str, str], *,
                progress_bar: bool = True) -> dict[str, dict[str, float]]:
    """Run a query pipeline for every query; returns a run (query id -> {document id: score}).

    The last stage's output is used: the ranker's, else the hybrid joiner's, else the retriever's.
    """
    from tqdm.auto import tqdm

    check_query_embedder_matches_store(pipeline)
    run: dict[str, dict[str, float]] = {}
    for query_id, text in tqdm(queries.items(), desc="Querying", unit="query", disable=not progress_bar):
        documents = query_documents(pipeline, text)
        ranking: dict[str, float] = {}
        for doc in documents:
            # Chunks of one source document count as that document, at its best chunk's score.
            doc_id = str(doc.meta.get("parent_id", doc.id))
            ranking[doc_id] = max(ranking.get(doc_id, float("-inf")), float(doc.score or 0.0))
        run[query_id] = ranking
    return run

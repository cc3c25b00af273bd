"""First-stage throughput of the experiment: one query at a time through the query pipeline (before) against
queries embedded in batches, Qdrant's batch query and bm25s scoring many queries at once (after), on the same
index, machine and queries, in one run. Both give the same lists (tests/test_pipelines.py checks it).

The hybrid first stage: the ensemble (all-MiniLM-L6-v2) in an on-disk Qdrant local store, plus BM25, top 100 each.
Query embeddings are not cached (the document embeddings are), so both sides embed every query.

    python benchmarks/first_stage_speed.py --data path/to/scifact --models ~/.cache/hardneg-models
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from haystack_hardneg import (
    EnsembleDocumentEmbedder,
    EnsembleTextEmbedder,
    LexicalIndexWriter,
    LexicalRetriever,
    build_indexing_pipeline,
    build_query_pipeline,
    open_document_store,
)
from haystack_hardneg.defaults import DEFAULT_CACHE_DIR, expand
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.experiment.first_stage import retrieve_lists
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.pipelines import build_lexical_indexing_pipeline, query_documents, whole_document_chunker


def one_at_a_time(split, pipeline, lexical) -> float:
    """The earlier first stage: each query through the query pipeline and the BM25 retriever."""
    started = time.perf_counter()
    for text in split.queries.values():
        query_documents(pipeline, text)
        lexical.run(query=text)
    return time.perf_counter() - started


def batched(split, embedder, store, lexical, top_k: int) -> float:
    started = time.perf_counter()
    retrieve_lists(split, embedder, store, lexical, top_k, meta_fields=["title"], separator=" ", desc="",
                   progress_bar=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder")
    parser.add_argument("--models", type=Path, default=Path(expand("$HARDNEG_MODELS")))
    parser.add_argument("--split", default="train")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("runs/first-stage-speed"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/first_stage_speed.json"))
    args = parser.parse_args()

    members = [{"model": str(args.models / "all-MiniLM-L6-v2")}]
    documents = EnsembleDocumentEmbedder(members=members, cache_dir=expand(DEFAULT_CACHE_DIR),
                                         meta_fields_to_embed=["title"], embedding_separator=" ")
    store = open_document_store(path=str(args.work / "qdrant"), index="speed", embedding_dim=384,
                                recreate_index=True, progress_bar=False)
    build_indexing_pipeline(documents, store, chunker=whole_document_chunker()).run(
        {"converter": {"sources": [str(args.data)]}})
    store.close()
    store = open_document_store(path=str(args.work / "qdrant"), index="speed", embedding_dim=384, progress_bar=False)
    writer = LexicalIndexWriter(index_path=str(args.work / "bm25"), meta_fields_to_index=["title"], separator=" ")
    build_lexical_indexing_pipeline(writer, chunker=whole_document_chunker()).run(
        {"converter": {"sources": [str(args.data)]}})
    lexical = LexicalRetriever(index_path=str(args.work / "bm25"), top_k=args.top_k)
    lexical.warm_up()
    embedder = EnsembleTextEmbedder(members=members)  # no cache: every query is embedded on both sides
    embedder.warm_up()
    split = load_beir(args.data, args.split)
    queries = len(split.queries)
    pipeline = build_query_pipeline(embedder, store, top_k=args.top_k)
    query_documents(pipeline, "warm-up query")
    # Alternated, twice each, so that neither side gets the warmer machine.
    seconds = {"one_at_a_time": [], "batched": []}
    for _ in range(2):
        seconds["one_at_a_time"].append(one_at_a_time(split, pipeline, lexical))
        seconds["batched"].append(batched(split, embedder, store, lexical, args.top_k))
    best = {name: min(values) for name, values in seconds.items()}
    result = {
        "what": f"hybrid first stage (MiniLM in Qdrant local mode + BM25, top {args.top_k} each) over the "
                f"{queries} SciFact {args.split} queries",
        "queries": queries,
        "seconds": seconds,
        "queries_per_second": {name: round(queries / s, 1) for name, s in best.items()},
        "speedup": round(best["one_at_a_time"] / best["batched"], 2),
        "machine": machine(),
    }
    store.close()
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

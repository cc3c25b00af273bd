"""``index``, ``query`` and ``demo``: documents into Qdrant and queries against them."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from haystack_hardneg.cli.common import (add_ensemble_arguments, add_store_arguments, embedder_dimension,
                                         ensemble_settings, open_store)
from haystack_hardneg.defaults import default_model
from haystack_hardneg.embed.components import EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.ingest.components import CorpusConverter, DocumentChunker
from haystack_hardneg.pipelines import (build_indexing_pipeline, build_query_pipeline,
                                       check_query_embedder_matches_store, load_pipeline, query_documents,
                                       run_queries)
from haystack_hardneg.rank.ranker import CrossEncoderRanker
from haystack_hardneg.store.qdrant import open_document_store

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def add_index_parser(commands) -> None:
    index = commands.add_parser("index", help="index URLs, HTML files and JSONL/BEIR corpora into Qdrant")
    index.add_argument("sources", nargs="+", help="URLs, HTML files, JSONL files or BEIR folders")
    index.add_argument("--pipeline", type=Path, help="a YAML indexing pipeline (instead of the options below)")
    add_ensemble_arguments(index)
    add_store_arguments(index)
    index.add_argument("--recreate", action="store_true", help="drop the collection first")
    index.add_argument("--split-by", choices=["word", "sentence", "token"], default="word")
    index.add_argument("--split-length", type=int, default=200)
    index.add_argument("--split-overlap", type=int, default=20)
    index.add_argument("--meta-field", action="append", help="meta field embedded before the text (e.g. title)")
    index.add_argument("--separator", default="\n", help="between embedded meta fields and the text")
    index.set_defaults(func=cmd_index)


def _indexing_pipeline(args: argparse.Namespace):
    if args.pipeline:
        return load_pipeline(args.pipeline)
    settings = ensemble_settings(args)
    embedder = EnsembleDocumentEmbedder(
        members=settings["members"], combine=settings["combine"], cache_dir=settings["cache_dir"],
        meta_fields_to_embed=args.meta_field or None, embedding_separator=args.separator,
    )
    chunker = DocumentChunker(
        split_by=args.split_by, split_length=args.split_length, split_overlap=args.split_overlap,
        tokenizer=settings["members"][0]["model"] if args.split_by == "token" else None,
    )
    store = open_store(args, embedder_dimension(embedder), recreate=args.recreate)
    return build_indexing_pipeline(embedder, store, converter=CorpusConverter(), chunker=chunker)


def cmd_index(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    pipeline = _indexing_pipeline(args)
    result = pipeline.run({"converter": {"sources": args.sources}},
                          include_outputs_from={"converter", "chunker", "embedder"})
    failures = result["converter"]["failures"]
    summary = {
        "sources": len(args.sources),
        "failed_sources": failures,
        "documents": len(result["converter"]["documents"]),
        "chunks": len(result["chunker"]["documents"]),
        "skipped_empty": result["chunker"]["skipped"] + result["embedder"]["skipped"],
        "written": result["writer"]["documents_written"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 1 if failures and len(failures) == len(args.sources) else 0


def add_query_parser(commands) -> None:
    query = commands.add_parser("query", help="retrieve documents for one or more queries")
    query.add_argument("text", nargs="+", help="the query text(s)")
    query.add_argument("--pipeline", type=Path, help="a YAML query pipeline (instead of the options below)")
    query.add_argument("--top-k", type=int, default=5)
    query.add_argument("--ranker", help="a cross-encoder folder (from `train`) to re-rank the retrieved documents")
    query.add_argument("--retrieve-k", type=int, default=50, help="documents retrieved for the ranker")
    query.add_argument("--fusion-alpha", type=float, default=None, help="ranker weight against the retriever score")
    add_ensemble_arguments(query)
    add_store_arguments(query)
    query.set_defaults(func=cmd_query)


def _query_pipeline(args: argparse.Namespace):
    if args.pipeline:
        return load_pipeline(args.pipeline)
    settings = ensemble_settings(args)
    embedder = EnsembleTextEmbedder(members=settings["members"], combine=settings["combine"],
                                    cache_dir=settings["cache_dir"])
    store = open_store(args, embedder_dimension(embedder))
    if args.ranker:
        ranker = CrossEncoderRanker(model=args.ranker, top_k=args.top_k, fusion_alpha=args.fusion_alpha,
                                    meta_fields_to_embed=["title"])
        return build_query_pipeline(embedder, store, top_k=args.retrieve_k, ranker=ranker)
    return build_query_pipeline(embedder, store, top_k=args.top_k)


def cmd_query(args: argparse.Namespace) -> int:
    pipeline = _query_pipeline(args)
    check_query_embedder_matches_store(pipeline)
    for text in args.text:
        documents = query_documents(pipeline, text)
        print(f"\n# {text}")
        for rank, doc in enumerate(documents[: args.top_k], start=1):
            title = doc.meta.get("title") or doc.meta.get("source") or ""
            snippet = " ".join((doc.content or "").split())[:160]
            print(f"{rank:>3}. {doc.score:.4f}  {doc.id}  {title[:60]}\n       {snippet}")
    return 0


def add_demo_parser(commands) -> None:
    demo = commands.add_parser("demo", help="index the shipped SciFact slice and evaluate retrieval")
    demo.add_argument("--data", default=str(EXAMPLES / "data" / "scifact-mini"))
    demo.add_argument("--model", action="append", help="member model(s); default all-MiniLM-L6-v2")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)


def _index_demo(data: Path, members: list[dict], out: Path) -> tuple[int, int]:
    """The slice into an on-disk local store; returns its dimension and the chunks written."""
    doc_embedder = EnsembleDocumentEmbedder(members=members, cache_dir=str(out / "embedding-cache"),
                                            meta_fields_to_embed=["title"], embedding_separator=" ")
    dim = embedder_dimension(doc_embedder)
    store = open_document_store(path=str(out / "qdrant"), index="scifact-mini", embedding_dim=dim, recreate_index=True,
                                progress_bar=False)
    indexed = build_indexing_pipeline(doc_embedder, store).run({"converter": {"sources": [str(data)]}})
    store.close()
    return dim, indexed["writer"]["documents_written"]


def cmd_demo(args: argparse.Namespace) -> int:
    """Index the shipped SciFact slice into an on-disk local Qdrant store and evaluate retrieval."""
    data, out = Path(args.data), Path(args.out)
    split = load_beir(data, "test")
    members = [{"model": m} for m in (args.model or [default_model()])]
    out.mkdir(parents=True, exist_ok=True)
    print(f"Indexing {len(split.corpus)} documents of {data} with {[m['model'] for m in members]} ...")
    started = time.perf_counter()
    dim, written = _index_demo(data, members, out)
    index_seconds = time.perf_counter() - started
    store = open_document_store(path=str(out / "qdrant"), index="scifact-mini", embedding_dim=dim, progress_bar=False)
    text_embedder = EnsembleTextEmbedder(members=members, cache_dir=str(out / "embedding-cache"))
    query_pipeline = build_query_pipeline(text_embedder, store, top_k=100)
    text_embedder.warm_up()
    started = time.perf_counter()
    run = run_queries(query_pipeline, split.queries)
    query_seconds = time.perf_counter() - started
    metrics = evaluate_run(split.qrels, run)
    store.close()
    print(f"\nIndexed {written} chunks in {index_seconds:.1f} s; {len(split.queries)} queries in {query_seconds:.1f} s.")
    print("\n| metric | value |\n|---|---|")
    for name, value in metrics.items():
        print(f"| {name} | {value:.4f} |")
    atomic_write_text(out / "demo-results.json", json.dumps({"metrics": metrics, "members": members}, indent=2))
    print(f"\nResults in {out / 'demo-results.json'}")
    return 0

"""``index`` and ``query``: documents into Qdrant and queries against them."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from haystack_hardneg.cli.common import (
    add_ensemble_arguments,
    add_store_arguments,
    closing_stores,
    embedder_dimension,
    ensemble_settings,
    open_store,
)
from haystack_hardneg.embed.components import EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.ingest.components import CorpusConverter, DocumentChunker
from haystack_hardneg.ingest.fetch import DEFAULT_MAX_BYTES
from haystack_hardneg.pipelines import (
    build_indexing_pipeline,
    build_query_pipeline,
    check_query_embedder_matches_store,
    load_pipeline,
    query_documents,
)
from haystack_hardneg.rank.ranker import CrossEncoderRanker


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
    index.add_argument("--max-sentence-words", type=int, default=200,
                       help="with --split-by sentence: a longer sentence is cut into windows of this many words")
    index.add_argument("--meta-field", action="append", help="meta field embedded before the text (e.g. title)")
    index.add_argument("--separator", default="\n", help="between embedded meta fields and the text")
    index.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                       help="a web page or HTML file larger than this is reported as failed, not read whole "
                            "(default: %(default)s)")
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
        max_sentence_words=args.max_sentence_words,
    )
    store = open_store(args, embedder_dimension(embedder), recreate=args.recreate)
    return build_indexing_pipeline(embedder, store, converter=CorpusConverter(max_bytes=args.max_bytes),
                                   chunker=chunker)


def cmd_index(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with closing_stores(_indexing_pipeline(args)) as pipeline:
        result = pipeline.run({"converter": {"sources": args.sources}},
                              include_outputs_from={"converter", "chunker", "embedder"})
    failures = result["converter"]["failures"]
    summary = {
        "sources": len(args.sources),
        "failed_sources": failures,
        "documents": len(result["converter"]["documents"]),
        "chunks": len(result["chunker"]["documents"]),
        "skipped_empty": result["chunker"]["skipped"] + result["embedder"]["skipped"],
        "long_sentences_cut_into_words": result["chunker"].get("long_sentences", 0),
        "written": result["writer"]["documents_written"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 1 if failures and len(failures) == len(args.sources) else 0


def fusion_alpha(value: str) -> float | str | None:
    """``auto`` (the weight stored with the model), ``none`` (the re-ranker alone) or a number in [0, 1]."""
    if value.lower() in ("auto", "none"):
        return value.lower() if value.lower() == "auto" else None
    try:
        alpha = float(value)
    except ValueError:
        alpha = float("nan")
    if not 0.0 <= alpha <= 1.0:
        raise argparse.ArgumentTypeError(f"give auto, none or a number in [0, 1], not {value!r}")
    return alpha


def add_query_parser(commands) -> None:
    query = commands.add_parser("query", help="retrieve documents for one or more queries")
    query.add_argument("text", nargs="+", help="the query text(s)")
    query.add_argument("--pipeline", type=Path, help="a YAML query pipeline (instead of the options below)")
    query.add_argument("--top-k", type=int, default=5, help="results shown per query (default 5)")
    query.add_argument("--ranker", help="a cross-encoder folder (from `train`) to re-rank the retrieved documents")
    query.add_argument("--retrieve-k", type=int, default=50, help="chunks retrieved for the ranker (default 50)")
    query.add_argument("--fusion-alpha", type=fusion_alpha, default="auto", metavar="auto|none|ALPHA",
                       help="the ranker's weight against the retriever's score: a number, none (the ranker alone) "
                            "or auto (default): the weight stored with the model only behind the first stage it was "
                            "chosen on, else the ranker alone (with a warning); `tune` chooses one for a pipeline")
    query.add_argument("--by-document", action="store_true",
                       help="one result per source document (its best chunk), instead of one per chunk")
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
    # Grouped by document, more chunks are kept so that top_k documents remain after grouping.
    if args.ranker:
        ranker = CrossEncoderRanker(model=args.ranker, top_k=args.retrieve_k if args.by_document else args.top_k,
                                    fusion_alpha=args.fusion_alpha, meta_fields_to_embed=["title"])
        return build_query_pipeline(embedder, store, top_k=args.retrieve_k, ranker=ranker)
    return build_query_pipeline(embedder, store, top_k=args.retrieve_k if args.by_document else args.top_k)


def best_chunk_per_document(documents: list) -> list:
    """The first (best) chunk of each source document, in order."""
    seen, best = set(), []
    for doc in documents:
        parent = doc.meta.get("parent_id", doc.id)
        if parent not in seen:
            seen.add(parent)
            best.append(doc)
    return best


def _describe_ranker(pipeline) -> None:
    if "ranker" not in pipeline.graph.nodes:
        return
    ranker = pipeline.get_component("ranker")
    if not isinstance(ranker, CrossEncoderRanker):
        return
    ranker.warm_up()
    alpha = ranker.effective_fusion_alpha
    if alpha is None:
        print("Re-ranked by the cross-encoder alone.")
    else:
        print(f"Re-ranked by the cross-encoder fused with the retriever's score at weight {alpha:.2f}.")


def cmd_query(args: argparse.Namespace) -> int:
    with closing_stores(_query_pipeline(args)) as pipeline:
        _answer(pipeline, args)
    return 0


def _answer(pipeline, args: argparse.Namespace) -> None:
    check_query_embedder_matches_store(pipeline)
    _describe_ranker(pipeline)
    for text in args.text:
        documents = query_documents(pipeline, text)
        if args.by_document:
            documents = best_chunk_per_document(documents)
        print(f"\n# {text}")
        for rank, doc in enumerate(documents[: args.top_k], start=1):
            title = doc.meta.get("title") or doc.meta.get("source") or ""
            snippet = " ".join((doc.content or "").split())[:160]
            print(f"{rank:>3}. {doc.score:.4f}  {doc.id}  {title[:60]}\n       {snippet}")

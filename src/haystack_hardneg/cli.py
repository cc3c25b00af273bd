"""The ``haystack-hardneg`` command line: thin argument parsing over the same functions the components use."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MODELS_DIR = "~/.cache/hardneg-models"
DEFAULT_CACHE_DIR = "~/.cache/haystack-hardneg/embeddings"


def _default_model() -> str:
    """all-MiniLM-L6-v2 from the local models folder when it is there, else its hub id."""
    local = Path(os.environ.get("HARDNEG_MODELS", DEFAULT_MODELS_DIR)).expanduser() / "all-MiniLM-L6-v2"
    return str(local) if local.is_dir() else "sentence-transformers/all-MiniLM-L6-v2"


def _add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ensemble (ignored with --pipeline)")
    group.add_argument("--model", action="append", help="member model: hub id or local folder (repeat for an ensemble)")
    group.add_argument("--weight", action="append", type=float, help="member weight, one per --model (default 1)")
    group.add_argument("--ensemble", type=Path, help="YAML/JSON file with 'members' (MemberSpec fields) and 'combine'")
    group.add_argument("--combine", choices=["concat", "mean"], default=None, help="how member vectors are combined")
    group.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="embedding cache folder ('none' disables it)")


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Qdrant store (ignored with --pipeline)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--store", default="qdrant-data", help="folder of Qdrant's embedded local mode (default)")
    where.add_argument("--url", help="a Qdrant server or cluster, e.g. http://localhost:6333")
    group.add_argument("--api-key-env", default="QDRANT_API_KEY", help="environment variable holding the API key")
    group.add_argument("--index", default="Document", help="collection name")


def _ensemble_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"members": [], "combine": "concat"}
    if args.ensemble:
        loaded = yaml.safe_load(args.ensemble.read_text())
        if not isinstance(loaded, dict) or "members" not in loaded:
            raise SystemExit(f"{args.ensemble}: expected a mapping with a 'members' list.")
        settings.update(loaded)
    if args.model:
        weights = args.weight or [1.0] * len(args.model)
        if len(weights) != len(args.model):
            raise SystemExit(f"Give one --weight per --model ({len(args.model)} models, {len(weights)} weights).")
        settings["members"] = [{"model": m, "weight": w} for m, w in zip(args.model, weights)]
    if not settings["members"]:
        settings["members"] = [{"model": _default_model()}]
    if args.combine:
        settings["combine"] = args.combine
    cache_dir = None if str(args.cache_dir).lower() == "none" else str(Path(args.cache_dir).expanduser())
    settings["cache_dir"] = cache_dir
    return settings


def _open_store(args: argparse.Namespace, embedding_dim: int, recreate: bool = False):
    from haystack.utils import Secret

    from haystack_hardneg.store.qdrant import open_document_store

    if args.url:
        key = Secret.from_env_var(args.api_key_env, strict=False)
        return open_document_store(url=args.url, api_key=key, index=args.index, embedding_dim=embedding_dim,
                                   recreate_index=recreate)
    return open_document_store(path=args.store, index=args.index, embedding_dim=embedding_dim, recreate_index=recreate)


def _embedder_dimension(embedder) -> int:
    embedder.warm_up()
    return embedder.encoder.dimension


def cmd_index(args: argparse.Namespace) -> int:
    from haystack_hardneg.embed.components import EnsembleDocumentEmbedder
    from haystack_hardneg.ingest.components import CorpusConverter, DocumentChunker
    from haystack_hardneg.pipelines import build_indexing_pipeline, load_pipeline

    started = time.perf_counter()
    if args.pipeline:
        pipeline = load_pipeline(args.pipeline)
    else:
        settings = _ensemble_settings(args)
        embedder = EnsembleDocumentEmbedder(
            members=settings["members"],
            combine=settings["combine"],
            cache_dir=settings["cache_dir"],
            meta_fields_to_embed=args.meta_field or None,
            embedding_separator=args.separator,
        )
        chunker = DocumentChunker(
            split_by=args.split_by, split_length=args.split_length, split_overlap=args.split_overlap,
            tokenizer=settings["members"][0]["model"] if args.split_by == "token" else None,
        )
        store = _open_store(args, _embedder_dimension(embedder), recreate=args.recreate)
        pipeline = build_indexing_pipeline(embedder, store, converter=CorpusConverter(), chunker=chunker)
    result = pipeline.run({"converter": {"sources": args.sources}}, include_outputs_from={"converter", "chunker", "embedder"})
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


def _query_pipeline(args: argparse.Namespace):
    from haystack_hardneg.embed.components import EnsembleTextEmbedder
    from haystack_hardneg.pipelines import build_query_pipeline, load_pipeline

    if args.pipeline:
        return load_pipeline(args.pipeline)
    settings = _ensemble_settings(args)
    embedder = EnsembleTextEmbedder(members=settings["members"], combine=settings["combine"], cache_dir=settings["cache_dir"])
    store = _open_store(args, _embedder_dimension(embedder))
    return build_query_pipeline(embedder, store, top_k=args.top_k)


def cmd_query(args: argparse.Namespace) -> int:
    pipeline = _query_pipeline(args)
    for text in args.text:
        data: dict[str, Any] = {"embedder": {"text": text}}
        if "ranker" in pipeline.graph.nodes:
            data["ranker"] = {"query": text}
        result = pipeline.run(data)
        documents = result.get("ranker", result.get("retriever"))["documents"]
        print(f"\n# {text}")
        for rank, doc in enumerate(documents[: args.top_k], start=1):
            title = doc.meta.get("title") or doc.meta.get("source") or ""
            snippet = " ".join((doc.content or "").split())[:160]
            print(f"{rank:>3}. {doc.score:.4f}  {doc.id}  {title[:60]}\n       {snippet}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Index the shipped SciFact slice into an on-disk local Qdrant store and evaluate retrieval."""
    from haystack_hardneg.embed.components import EnsembleDocumentEmbedder, EnsembleTextEmbedder
    from haystack_hardneg.evaluate.metrics import evaluate_run
    from haystack_hardneg.ingest.beir import load_beir
    from haystack_hardneg.pipelines import build_indexing_pipeline, build_query_pipeline, run_queries
    from haystack_hardneg.store.qdrant import open_document_store

    data = Path(args.data)
    split = load_beir(data, "test")
    members = [{"model": m} for m in (args.model or [_default_model()])]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = str(out / "embedding-cache")
    print(f"Indexing {len(split.corpus)} documents of {data} with {[m['model'] for m in members]} ...")
    started = time.perf_counter()
    doc_embedder = EnsembleDocumentEmbedder(members=members, cache_dir=cache_dir, meta_fields_to_embed=["title"],
                                            embedding_separator=" ")
    dim = _embedder_dimension(doc_embedder)
    store = open_document_store(path=str(out / "qdrant"), index="scifact-mini", embedding_dim=dim, recreate_index=True,
                                progress_bar=False)
    indexing = build_indexing_pipeline(doc_embedder, store)
    indexed = indexing.run({"converter": {"sources": [str(data)]}})
    index_seconds = time.perf_counter() - started
    text_embedder = EnsembleTextEmbedder(members=members, cache_dir=cache_dir)
    query_pipeline = build_query_pipeline(text_embedder, store, top_k=100)
    text_embedder.warm_up()
    started = time.perf_counter()
    run = run_queries(query_pipeline, split.queries)
    query_seconds = time.perf_counter() - started
    metrics = evaluate_run(split.qrels, run)
    store.close()
    print(f"\nIndexed {indexed['writer']['documents_written']} chunks in {index_seconds:.1f} s; "
          f"{len(split.queries)} queries in {query_seconds:.1f} s.")
    print("\n| metric | value |\n|---|---|")
    for name, value in metrics.items():
        print(f"| {name} | {value:.4f} |")
    (out / "demo-results.json").write_text(json.dumps({"metrics": metrics, "members": members}, indent=2))
    print(f"\nResults in {out / 'demo-results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haystack-hardneg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index URLs, HTML files and JSONL/BEIR corpora into Qdrant")
    index.add_argument("sources", nargs="+", help="URLs, HTML files, JSONL files or BEIR folders")
    index.add_argument("--pipeline", type=Path, help="a YAML indexing pipeline (instead of the options below)")
    _add_ensemble_arguments(index)
    _add_store_arguments(index)
    index.add_argument("--recreate", action="store_true", help="drop the collection first")
    index.add_argument("--split-by", choices=["word", "sentence", "token"], default="word")
    index.add_argument("--split-length", type=int, default=200)
    index.add_argument("--split-overlap", type=int, default=20)
    index.add_argument("--meta-field", action="append", help="meta field embedded before the text (e.g. title)")
    index.add_argument("--separator", default="\n", help="between embedded meta fields and the text")
    index.set_defaults(func=cmd_index)

    query = commands.add_parser("query", help="retrieve documents for one or more queries")
    query.add_argument("text", nargs="+", help="the query text(s)")
    query.add_argument("--pipeline", type=Path, help="a YAML query pipeline (instead of the options below)")
    query.add_argument("--top-k", type=int, default=5)
    _add_ensemble_arguments(query)
    _add_store_arguments(query)
    query.set_defaults(func=cmd_query)

    demo = commands.add_parser("demo", help="index the shipped SciFact slice and evaluate retrieval")
    demo.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "examples" / "data" / "scifact-mini"))
    demo.add_argument("--model", action="append", help="member model(s); default all-MiniLM-L6-v2")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\nInterrupted: everything embedded so far is in the cache; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

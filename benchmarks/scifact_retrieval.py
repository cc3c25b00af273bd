"""Faithfulness of the ensemble first stage on BEIR SciFact (test split, 300 queries).

Indexes all 5,183 documents into an on-disk Qdrant local store through the indexing pipeline, writes the
query pipeline as YAML, loads that YAML back and retrieves for every test query, then scores with ranx.
Documents are not chunked (SciFact abstracts fit the models' windows, as in MTEB), and the title is
embedded before the text with a space, as MTEB does.

    python benchmarks/scifact_retrieval.py --data examples/data/scifact --models ~/.cache/hardneg-models
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from haystack_hardneg import (
    DocumentChunker,
    EnsembleDocumentEmbedder,
    EnsembleTextEmbedder,
    build_indexing_pipeline,
    build_query_pipeline,
    load_pipeline,
    open_document_store,
)
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.pipelines import run_queries

CONFIGS = {
    "minilm": ["all-MiniLM-L6-v2"],
    "minilm+mpnet": ["all-MiniLM-L6-v2", "all-mpnet-base-v2"],
}
PUBLISHED = {"minilm": 0.645}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("examples/data/scifact"))
    parser.add_argument("--models", type=Path, default=Path("~/.cache/hardneg-models").expanduser())
    parser.add_argument("--work", type=Path, default=Path("runs/scifact-retrieval"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/scifact"))
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/haystack-hardneg/embeddings").expanduser()))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    args = parser.parse_args()

    split = load_beir(args.data, "test")
    results = {}
    for name in args.configs:
        members = [{"model": str(args.models / m), "batch_size": 32} for m in CONFIGS[name]]
        embedder = EnsembleDocumentEmbedder(
            members=members, cache_dir=args.cache_dir, meta_fields_to_embed=["title"], embedding_separator=" "
        )
        embedder.warm_up()
        store_path = args.work / f"qdrant-{name}"
        store = open_document_store(path=str(store_path), index="scifact", embedding_dim=embedder.encoder.dimension,
                                    recreate_index=True, progress_bar=False)
        # No chunking: one chunk per abstract (the longest SciFact abstract is far below 100k words).
        chunker = DocumentChunker(split_by="word", split_length=100_000, split_overlap=0)
        started = time.perf_counter()
        indexed = build_indexing_pipeline(embedder, store, chunker=chunker).run(
            {"converter": {"sources": [str(args.data)]}}
        )
        index_seconds = time.perf_counter() - started
        yaml_path = args.out / f"query_pipeline_{name.replace('+', '_')}.yml"
        store.close()  # local mode allows one client per folder: the YAML pipeline opens its own
        query_store = open_document_store(path=str(store_path), index="scifact", embedding_dim=store.embedding_dim,
                                          progress_bar=False)
        query = build_query_pipeline(EnsembleTextEmbedder(members=members), query_store, top_k=100)
        yaml_path.write_text(query.dumps())

        pipeline = load_pipeline(yaml_path)
        pipeline.warm_up()
        started = time.perf_counter()
        run = run_queries(pipeline, split.queries)
        query_seconds = time.perf_counter() - started
        metrics = evaluate_run(split.qrels, run)
        pipeline.get_component("retriever")._document_store.close()  # noqa: SLF001 - no public accessor
        results[name] = {
            "members": CONFIGS[name],
            "documents_indexed": indexed["writer"]["documents_written"],
            "index_seconds": round(index_seconds, 1),
            "query_seconds_per_query": round(query_seconds / len(split.queries), 4),
            "metrics": metrics,
            "published_ndcg@10": PUBLISHED.get(name),
        }
        print(name, json.dumps(results[name], indent=2), flush=True)

    record = {
        "command": "python benchmarks/scifact_retrieval.py --data examples/data/scifact",
        "machine": machine(),
        "queries": len(split.queries),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval.json").write_text(json.dumps(record, indent=2))
    lines = ["| first stage | nDCG@10 | MRR@10 | R@100 | published nDCG@10 |", "|---|---|---|---|---|"]
    for name, r in results.items():
        m = r["metrics"]
        pub = f"{r['published_ndcg@10']:.3f}" if r["published_ndcg@10"] else "-"
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} | {pub} |")
    (args.out / "retrieval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

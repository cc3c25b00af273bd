"""Re-ranking SciFact test queries with a trained cross-encoder: nDCG@10 / MRR@10 before and after.

First stage: the ensemble's Qdrant collection written by scifact_retrieval.py (top ``--retrieve-k``); then
CrossEncoderRanker, alone and fused with the first-stage score. Latency is the ranker's wall time per query.

    python benchmarks/scifact_rerank.py --model runs/train-ensemble_cluster/model --config minilm+mpnet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from haystack_hardneg import CrossEncoderRanker, EnsembleTextEmbedder, build_query_pipeline, open_document_store
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import paired_test
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.pipelines import run_queries
from haystack_hardneg.rank.fusion import fuse

MEMBERS = {"minilm": ["all-MiniLM-L6-v2"], "minilm+mpnet": ["all-MiniLM-L6-v2", "all-mpnet-base-v2"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the trained cross-encoder folder")
    parser.add_argument("--config", default="minilm+mpnet", choices=list(MEMBERS))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--models", type=Path, default=Path("~/.cache/hardneg-models").expanduser())
    parser.add_argument("--work", type=Path, default=Path("runs/scifact-retrieval"))
    parser.add_argument("--retrieve-k", type=int, default=30)
    parser.add_argument("--alpha", type=float, nargs="*", default=[0.5])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-report", type=Path, help="training_report.json, for the training time")
    args = parser.parse_args()
    split = load_beir(args.data, "test")
    members = [{"model": str(args.models / m)} for m in MEMBERS[args.config]]
    embedder = EnsembleTextEmbedder(members=members, cache_dir=str(Path("~/.cache/haystack-hardneg/embeddings").expanduser()))
    embedder.warm_up()
    store = open_document_store(path=str(args.work / f"qdrant-{args.config}"), index="scifact",
                                embedding_dim=embedder.encoder.dimension, progress_bar=False)
    first_stage = build_query_pipeline(embedder, store, top_k=args.retrieve_k)
    first_run = run_queries(first_stage, split.queries)
    results = {"first_stage": evaluate_run(split.qrels, first_run)}
    print("first stage", results["first_stage"], flush=True)

    # The ranker re-scores the first stage's candidates: fetch each query's documents once.
    retriever = first_stage.get_component("retriever")
    candidates = {}
    for query_id, text in split.queries.items():
        vector = embedder.run(text)["embedding"]
        candidates[query_id] = retriever.run(query_embedding=vector, top_k=args.retrieve_k)["documents"]
    ranker = CrossEncoderRanker(model=args.model, top_k=args.retrieve_k, meta_fields_to_embed=["title"],
                                embedding_separator=" ", batch_size=32)
    ranker.warm_up()
    run, started = {}, time.perf_counter()
    for query_id, text in split.queries.items():
        ranked = ranker.run(query=text, documents=candidates[query_id])["documents"]
        run[query_id] = {d.id: float(d.score) for d in ranked}
    seconds = time.perf_counter() - started
    results["reranked"] = evaluate_run(split.qrels, run)
    results["reranked"]["latency_ms_per_query"] = round(1000 * seconds / len(split.queries), 1)
    results["reranked"]["vs_first_stage"] = {m: paired_test(split.qrels, run, first_run, m) for m in ("ndcg@10", "mrr@10")}
    print("reranked", results["reranked"], flush=True)
    # Fusion re-uses the ranker's scores: the same function CrossEncoderRanker(fusion_alpha=...) applies.
    for alpha in args.alpha:
        fused = {}
        for query_id, docs in candidates.items():
            ids = [d.id for d in docs]
            scores = fuse(np.array([run[query_id][i] for i in ids]), np.array([d.score for d in docs]), alpha)
            fused[query_id] = dict(zip(ids, map(float, scores)))
        name = f"reranked_fused_alpha_{alpha}"
        results[name] = evaluate_run(split.qrels, fused)
        results[name]["vs_first_stage"] = {m: paired_test(split.qrels, fused, first_run, m) for m in ("ndcg@10", "mrr@10")}
        print(name, results[name], flush=True)
    store.close()
    record = {"model": args.model, "first_stage": args.config, "retrieve_k": args.retrieve_k, "results": results}
    if args.train_report and args.train_report.exists():
        train = json.loads(args.train_report.read_text())
        record["training"] = {k: train.get(k) for k in ("train_rows", "validation_queries", "steps", "validation")}
        runtimes = [h.get("train_runtime") for h in train.get("history", []) if "train_runtime" in h]
        record["training"]["train_seconds"] = runtimes[-1] if runtimes else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

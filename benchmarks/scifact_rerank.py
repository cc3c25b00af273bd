"""Re-ranking SciFact test queries with a trained cross-encoder: nDCG@10 / MRR@10 before and after.

First stage: the ensemble's Qdrant collection written by scifact_retrieval.py (top ``--retrieve-k``); then
CrossEncoderRanker with its defaults (``fusion_alpha="auto"``: the weight its training chose on validation,
stored with the model), and the re-ranker alone (``fusion_alpha=None``). Latency is the ranker's wall time per
query.

    python benchmarks/scifact_rerank.py --model runs/train-ensemble_cluster/model --config minilm+mpnet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from haystack_hardneg import CrossEncoderRanker, EnsembleTextEmbedder, build_query_pipeline, open_document_store
from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import paired_test
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.pipelines import run_queries
from haystack_hardneg.scoring.fusion import fuse_scores

MEMBERS = {"minilm": ["all-MiniLM-L6-v2"], "minilm+mpnet": ["all-MiniLM-L6-v2", "all-mpnet-base-v2"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the trained cross-encoder folder")
    parser.add_argument("--config", default="minilm+mpnet", choices=list(MEMBERS))
    parser.add_argument("--data", type=Path, default=Path("examples/data/scifact"))
    parser.add_argument("--models", type=Path, default=Path("~/.cache/hardneg-models").expanduser())
    parser.add_argument("--work", type=Path, default=Path("runs/scifact-retrieval"))
    parser.add_argument("--retrieve-k", type=int, default=30)
    parser.add_argument("--alpha", type=float, nargs="*", default=[], help="extra fixed fusion weights to report")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-report", type=Path, help="training_report.json, for the training time")
    args = parser.parse_args()
    split = load_beir(args.data, "test")
    members = [{"model": str(args.models / m)} for m in MEMBERS[args.config]]
    cache = str(Path("~/.cache/haystack-hardneg/embeddings").expanduser())
    embedder = EnsembleTextEmbedder(members=members, cache_dir=cache)
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
                                embedding_separator=" ", batch_size=32, fusion_alpha=None)
    ranker.warm_up()
    default = CrossEncoderRanker(model=args.model, meta_fields_to_embed=["title"], embedding_separator=" ")
    default.warm_up()  # resolves fusion_alpha="auto" from the model folder
    stored_alpha = default.effective_fusion_alpha
    run, started = {}, time.perf_counter()
    for query_id, text in split.queries.items():
        ranked = ranker.run(query=text, documents=candidates[query_id])["documents"]
        run[query_id] = {d.id: float(d.score) for d in ranked}
    seconds = time.perf_counter() - started
    results["reranked"] = evaluate_run(split.qrels, run)
    results["reranked"]["latency_ms_per_query"] = round(1000 * seconds / len(split.queries), 1)
    results["reranked"]["vs_first_stage"] = {m: paired_test(split.qrels, run, first_run, m)
                                             for m in ("ndcg@10", "mrr@10")}
    print("reranked", results["reranked"], flush=True)
    # Fusion re-uses the ranker's scores: the same function CrossEncoderRanker(fusion_alpha=...) applies.
    alphas = [("defaults (fusion_alpha auto)", stored_alpha)] if stored_alpha is not None else []
    alphas += [(f"reranked_fused_alpha_{a}", a) for a in args.alpha]
    for name, alpha in alphas:
        fused = {q: fuse_scores(run[q], {d.id: d.score for d in docs}, alpha) for q, docs in candidates.items()}
        if alpha == stored_alpha:  # the default ranker itself gives these scores: checked on a few queries
            for query_id in list(candidates)[:5]:
                direct = {d.id: d.score for d in default.run(query=split.queries[query_id],
                                                              documents=candidates[query_id],
                                                              top_k=args.retrieve_k)["documents"]}
                assert all(abs(direct[i] - fused[query_id][i]) < 1e-6 for i in direct), query_id
        results[name] = evaluate_run(split.qrels, fused)
        results[name]["fusion_alpha"] = alpha
        results[name]["vs_first_stage"] = {m: paired_test(split.qrels, fused, first_run, m)
                                           for m in ("ndcg@10", "mrr@10")}
        print(name, results[name], flush=True)
    store.close()
    record = {"model": args.model, "first_stage": args.config, "retrieve_k": args.retrieve_k,
              "stored_fusion_alpha": stored_alpha, "machine": machine(), "results": results}
    if args.train_report and args.train_report.exists():
        train = json.loads(args.train_report.read_text())
        record["training"] = {k: train.get(k) for k in ("train_rows", "validation_queries", "steps", "validation",
                                                         "validation_on", "fusion")}
        runtimes = [h.get("train_runtime") for h in train.get("history", []) if "train_runtime" in h]
        record["training"]["train_seconds"] = runtimes[-1] if runtimes else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

"""What the cluster count does to ensemble-cluster negatives, without training anything.

The study (benchmarks/scifact/study/) trains a re-ranker per variant, about 40 minutes each on 2 cores; this
asks the cheaper question first: how far the mined negatives move when K-means gets fewer or more clusters.
For each count it mines the experiment's training queries exactly as the experiment's ``mine`` stage does
(same store, query vectors, guard and window; only ``n_clusters`` changes) and records the mining report's
measures (ensemble rank of the negatives, score gap to the positive, candidates held back, negatives taken
from the fallback), the share of each pair's negatives that the default count also picks, the share that
the BM25 strategy picks, and where the negatives sit in the first stage's top ``rerank_k``.

    HARDNEG_MODELS=~/.cache/hardneg-models python benchmarks/cluster_count_sweep.py \
        --config benchmarks/scifact/study_ensemble_cluster.yml --run runs/experiment-scifact-s4 \
        --out benchmarks/scifact/study/cluster_count_sweep.json

``--run`` is a run folder of the same index (its Qdrant store is opened; use one no experiment is running in).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).parent))
from negatives_vs_first_stage import placement  # noqa: E402

from haystack_hardneg.experiment.config import ExperimentConfig  # noqa: E402
from haystack_hardneg.experiment.environment import machine  # noqa: E402
from haystack_hardneg.experiment.runner import Experiment  # noqa: E402
from haystack_hardneg.experiment.upstream import training_queries  # noqa: E402
from haystack_hardneg.files import atomic_write_text, read_jsonl  # noqa: E402
from haystack_hardneg.ingest.beir import load_beir  # noqa: E402
from haystack_hardneg.mine.cluster import default_cluster_count  # noqa: E402
from haystack_hardneg.mine.component import ClusterNegativeMiner  # noqa: E402
from haystack_hardneg.mine.negatives import mine_negatives  # noqa: E402
from haystack_hardneg.mine.report import mining_report  # noqa: E402


def overlap(pairs, reference: dict[tuple[str, str], set[str]]) -> float:
    """Mean share of a pair's negatives that ``reference`` also picked for the same (query, positive)."""
    shares = [len(set(p.negative_ids) & reference[(p.query_id, p.positive_id)]) / len(p.negative_ids)
              for p in pairs if (p.query_id, p.positive_id) in reference and p.negative_ids]
    return round(mean(shares), 4) if shares else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="run folder whose store and first stage to use")
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 10, 25, 100, 200, 400, 800])
    parser.add_argument("--rerank-k", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    config = replace(ExperimentConfig.from_yaml(args.config), out=str(args.run)).resolved()
    experiment = Experiment(config, progress_bar=False)
    queries, qrels = training_queries(experiment.config, load_beir(config.data, config.train_split))
    miner = ClusterNegativeMiner(text_embedder=experiment.text_embedder(), document_store=experiment.store(),
                                 meta_fields_to_embed=config.meta_fields, embedding_separator=config.separator,
                                 progress_bar=False, mining=config.mining_config("ensemble_cluster"))
    miner.warm_up()
    data, _ = miner.mining_data(queries, qrels)
    candidates = read_jsonl(args.run / "first_stage" / "train_candidates.jsonl")
    ranks = {r["query_id"]: {c["id"]: i for i, c in enumerate(r["candidates"])} for r in candidates}

    def negatives_of(result) -> dict[tuple[str, str], set[str]]:
        return {(p.query_id, p.positive_id): set(p.negative_ids) for p in result.pairs}

    default_count = default_cluster_count(len(data.doc_ids))
    base = replace(miner.config, strategy="ensemble_cluster")
    reference = negatives_of(mine_negatives(data, base, progress_bar=False))
    bm25 = negatives_of(mine_negatives(data, replace(miner.config, strategy="bm25"), progress_bar=False))
    rows = {}
    for count in sorted({*args.counts, default_count}):
        result = mine_negatives(data, replace(base, n_clusters=count), progress_bar=False)
        report = mining_report(data, result)
        provenance = [{"query_id": p.query_id, "negative_ids": p.negative_ids} for p in result.pairs]
        rows[count] = {
            "default": count == default_count,
            "pairs": report["pairs"],
            "cluster_size_mean": report["clusters"]["size"]["mean"],
            "negative_rank_in_ensemble": report["negative_rank_in_ensemble"],
            "score_gap_to_positive": report["score_gap_to_positive"],
            "suspected_positives": report["suspected_positives"],
            "negatives_from_fallback": report["clusters"]["negatives_from_fallback"],
            "too_few_candidates": report["skipped"].get("too_few_candidates", 0),
            "same_as_default_count": overlap(result.pairs, reference),
            "same_as_bm25": overlap(result.pairs, bm25),
            "first_stage": placement(provenance, ranks, args.rerank_k),
        }
        print(f"k={count}: rank {rows[count]['negative_rank_in_ensemble']['mean']:.1f}, "
              f"gap {rows[count]['score_gap_to_positive']['mean']:.3f}", flush=True)
    results = {"config": str(args.config), "run": str(args.run), "documents": len(data.doc_ids),
               "mining": asdict(base), "machine": machine(), "counts": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    k = args.rerank_k
    print(f"| clusters | mean size | ensemble rank of negatives (mean / median) | gap to positive | held back | "
          f"from fallback | same as default | same as BM25 | in first-stage top {k} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for count, row in rows.items():
        rank, gap = row["negative_rank_in_ensemble"], row["score_gap_to_positive"]
        print(f"| {count}{' (default)' if row['default'] else ''} | {row['cluster_size_mean']:.0f} | "
              f"{rank['mean']:.1f} / {rank['median']:.0f} | {gap['mean']:.3f} | {row['suspected_positives']} | "
              f"{row['negatives_from_fallback']} | {row['same_as_default_count']:.0%} | {row['same_as_bm25']:.0%} | "
              f"{row['first_stage'][f'share_in_top_{k}']:.0%} |")


if __name__ == "__main__":
    main()

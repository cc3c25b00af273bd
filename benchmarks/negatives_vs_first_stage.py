"""Where each strategy's mined negatives sit in the first stage the re-ranker will re-rank.

A re-ranker meets, at query time, the first stage's top ``rerank_k``; negatives drawn from elsewhere teach it
distinctions it will not be asked to make. For every strategy of an experiment run folder this reads the
miner's provenance (the negative ids of each training pair) and the first stage's candidates for the same
training queries (``first_stage/train_candidates.jsonl``, the hybrid top 100 when the run has a lexical member),
and reports the share of negatives inside the top ``rerank_k`` and the top 100, their mean rank there, and how
many distinct candidates of the top ``rerank_k`` the strategy's negatives cover per query.

    python benchmarks/negatives_vs_first_stage.py --run runs/experiment-scifact \\
        --out benchmarks/scifact/negatives_vs_first_stage.json
    python benchmarks/negatives_vs_first_stage.py --run runs/study-ensemble-cluster \
        --out benchmarks/scifact/study/negatives_vs_first_stage.json     (variants included)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import read_jsonl

STRATEGIES = ("ensemble_cluster", "ensemble", "dense", "bm25", "random")


def placement(provenance: list[dict], ranks: dict[str, dict[str, int]], rerank_k: int) -> dict[str, float]:
    """Share of negatives in the top ``rerank_k`` / top of the candidate lists, and their mean rank there."""
    in_window, in_list, rank_sum, covered = 0, 0, 0, {}
    total = 0
    for pair in provenance:
        query_ranks = ranks.get(pair["query_id"], {})
        for negative in pair["negative_ids"]:
            total += 1
            rank = query_ranks.get(negative)
            if rank is None:
                continue
            in_list += 1
            rank_sum += rank
            if rank < rerank_k:
                in_window += 1
                covered.setdefault(pair["query_id"], set()).add(negative)
    queries = {pair["query_id"] for pair in provenance}
    return {
        "negatives": total,
        f"share_in_top_{rerank_k}": round(in_window / max(1, total), 4),
        "share_in_candidates": round(in_list / max(1, total), 4),
        "mean_rank_in_candidates": round(rank_sum / max(1, in_list), 1),
        f"distinct_top_{rerank_k}_negatives_per_query": round(mean(len(covered.get(q, ())) for q in queries), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/experiment-scifact"))
    parser.add_argument("--rerank-k", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    candidates = read_jsonl(args.run / "first_stage" / "train_candidates.jsonl")
    ranks = {r["query_id"]: {c["id"]: i for i, c in enumerate(r["candidates"])} for r in candidates}
    depth = max((len(r["candidates"]) for r in candidates), default=0)
    results = {"run": str(args.run), "rerank_k": args.rerank_k, "candidate_depth": depth, "machine": machine(),
               "strategies": {}}
    # The built-in strategies in their usual order, then any variants the run defines.
    mined = sorted(p.parent.name for p in (args.run / "mine").glob("*/provenance.jsonl"))
    for strategy in [s for s in STRATEGIES if s in mined] + [s for s in mined if s not in STRATEGIES]:
        results["strategies"][strategy] = placement(read_jsonl(args.run / "mine" / strategy / "provenance.jsonl"),
                                                    ranks, args.rerank_k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    k = args.rerank_k
    print(f"| strategy | negatives | in first-stage top {k} | in top {depth} | mean rank there | "
          f"distinct top-{k} negatives per query |")
    print("|---|---|---|---|---|---|")
    for strategy, row in results["strategies"].items():
        print(f"| {strategy} | {row['negatives']} | {row[f'share_in_top_{k}']:.1%} | "
              f"{row['share_in_candidates']:.1%} | "
              f"{row['mean_rank_in_candidates']} | {row[f'distinct_top_{k}_negatives_per_query']} |")


if __name__ == "__main__":
    main()

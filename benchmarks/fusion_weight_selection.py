"""How should the fusion weight be chosen on a small validation slice? A split-half study on validation data only.

Every re-ranker of an experiment run folder has scores for its held-out *training* queries (``rerank/<s>.json``,
group ``validation``). This script splits those queries in two halves many times (seeded), chooses the fusion
weight on one half by each rule, and measures nDCG@10 on the other half at the chosen weight:

    argmax      the weight with the best nDCG@10 (the rule the trainer and the experiment used so far)
    one_se      among weights within one standard error of the best (paired per-query differences), the one
                closest to equal weighting (0.5): the one-standard-error rule with a prior towards balance
    one_se_floor  the same, leaving out weights that score below the first stage alone (alpha 0) on the slice
    smoothed    argmax of the 3-point moving average over neighbouring weights
    fixed_0.5   no choice at all

No test query is read.

    python benchmarks/fusion_weight_selection.py runs/experiment-scifact runs/study-ensemble-cluster \
        --out benchmarks/scifact/fusion_weight_selection.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.experiment.report import reranked_run
from haystack_hardneg.files import read_jsonl
from haystack_hardneg.scoring.fusion import fuse_scores

ALPHAS = [round(0.1 * i, 1) for i in range(11)]


def per_query_ndcg(run_folder: Path, strategy: str) -> tuple[list[str], np.ndarray]:
    """Validation queries, and their nDCG@10 at every weight (queries x weights)."""
    records = read_jsonl(run_folder / "first_stage" / "train_candidates.jsonl")
    first = {r["query_id"]: {c["id"]: c["score"] for c in r["candidates"]} for r in records}
    qrels = {r["query_id"]: {d: 1 for d in r["positive_ids"]} for r in records}
    validation = json.loads((run_folder / "rerank" / f"{strategy}.json").read_text())["validation"]
    scores = {q: h for q, h in validation.items() if h}
    queries = sorted(scores)
    columns = []
    for alpha in ALPHAS:
        run = {q: reranked_run(first[q], fuse_scores(scores[q], first[q], alpha)) for q in queries}
        values = evaluate_run({q: qrels[q] for q in queries}, run, ("ndcg@10",), per_query=True)["ndcg@10"]
        columns.append([values[q] for q in queries])
    return queries, np.array(columns).T


def choose(matrix: np.ndarray, rule: str) -> int:
    means = matrix.mean(axis=0)
    best = int(np.argmax(means))
    if rule == "argmax":
        return best
    if rule == "fixed_0.5":
        return ALPHAS.index(0.5)
    if rule == "smoothed":
        padded = np.concatenate([[means[0]], means, [means[-1]]])
        return int(np.argmax((padded[:-2] + padded[1:-1] + padded[2:]) / 3))
    if rule in ("one_se", "one_se_floor"):
        differences = matrix - matrix[:, [best]]
        se = differences.std(axis=0, ddof=1) / np.sqrt(len(matrix))
        close = [i for i in range(len(ALPHAS)) if means[i] >= means[best] - se[i]]
        if rule == "one_se_floor":  # never a fusion the slice scores below the first stage alone (alpha 0)
            close = [i for i in close if means[i] >= means[0]] or [best]
        return min(close, key=lambda i: (abs(ALPHAS[i] - 0.5), -means[i]))
    raise ValueError(rule)


RULES = ("argmax", "one_se", "one_se_floor", "smoothed", "fixed_0.5")


def split_half(matrix: np.ndarray, repeats: int, seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    held = {rule: [] for rule in RULES}
    oracle = []
    for _ in range(repeats):
        order = rng.permutation(len(matrix))
        a, b = matrix[order[: len(order) // 2]], matrix[order[len(order) // 2:]]
        oracle.append(b.mean(axis=0).max())
        for rule in RULES:
            held[rule].append(b[:, choose(a, rule)].mean())
    oracle_mean = float(np.mean(oracle))
    return {rule: {"held_out_ndcg@10": round(float(np.mean(v)), 4),
                   "regret_vs_best_weight_on_that_half": round(oracle_mean - float(np.mean(v)), 4)}
            for rule, v in held.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results: dict = {"alphas": ALPHAS, "repeats": args.repeats, "machine": machine(), "models": {}}
    for run in args.runs:
        for path in sorted((run / "rerank").glob("*.json")):
            queries, matrix = per_query_ndcg(run, path.stem)
            name = f"{run.name}/{path.stem}"
            results["models"][name] = {"validation_queries": len(queries),
                                       "chosen_on_all": {r: ALPHAS[choose(matrix, r)] for r in RULES},
                                       "split_half": split_half(matrix, args.repeats, args.seed)}
    results["mean_over_models"] = {
        rule: round(float(np.mean([m["split_half"][rule]["held_out_ndcg@10"] for m in results["models"].values()])), 4)
        for rule in RULES}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("| model | queries | " + " | ".join(f"{r} (chosen on all)" for r in RULES) + " |")
    print("|---|---|" + "---|" * len(RULES))
    for name, m in results["models"].items():
        cells = [f"{m['split_half'][r]['held_out_ndcg@10']:.4f} ({m['chosen_on_all'][r]})" for r in RULES]
        print(f"| {name} | {m['validation_queries']} | " + " | ".join(cells) + " |")
    print("| mean over models | | " + " | ".join(f"{results['mean_over_models'][r]:.4f}" for r in RULES) + " |")


if __name__ == "__main__":
    main()

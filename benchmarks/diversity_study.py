"""Does the ensemble's diversity help? Re-rankers trained on negatives mined by one model (dense: MiniLM), by the
paper's ensemble of two (ensemble_cluster: MiniLM + mpnet) and by that ensemble with BM25 as a third, lexical
scorer (cluster_hybrid: the cluster candidates ranked by BM25 fused with the ensemble), compared on SciFact's test
queries, alone and fused with the first stage, with paired t-tests.

Every re-ranker comes from runs with the same first stage, base model, epochs, batch, seed and validation rule: the
full experiment (``examples/experiment_scifact.yml``: ensemble_cluster and dense) and the ensemble-cluster study
(``benchmarks/scifact/study_ensemble_cluster.yml``: cluster_hybrid and ensemble_cluster again). Each is fused at the
weight that was best on its own held-out training queries (the experiment's default rule, ``argmax``). The fused
test values of the experiment's re-rankers are computed here from its run folder's scores; the study's are read
from its committed per-query file, after checking that the re-ranker both runs share (ensemble_cluster) gets the
same per-query values from either at the study's weight.

    python benchmarks/diversity_study.py --run runs/experiment-scifact \\
        --study benchmarks/scifact/study/results --json benchmarks/scifact/diversity_study.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import paired_test_on_values
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.experiment.report import reranked_run
from haystack_hardneg.files import atomic_write_text, read_jsonl
from haystack_hardneg.mine.candidates import record_qrels
from haystack_hardneg.scoring.fusion import fuse_scores

# Which mining each row stands for.
ROWS = {"dense": "one model (MiniLM)", "ensemble_cluster": "ensemble of two (MiniLM + mpnet), the paper",
        "cluster_hybrid": "ensemble of two + BM25 as a third scorer"}
FROM_RUN = ("dense", "ensemble_cluster")
FROM_STUDY = "cluster_hybrid"
SHARED = "ensemble_cluster"


def fused_per_query(run: Path, strategy: str, alpha: float) -> dict[str, float]:
    """Test nDCG@10 per query of ``strategy``'s re-ranker fused with the first stage at ``alpha``."""
    records = {r["query_id"]: r for r in read_jsonl(run / "first_stage" / "test_candidates.jsonl")}
    scores = json.loads((run / "rerank" / f"{strategy}.json").read_text())["test"]
    qrels = {q: record_qrels(records[q]) for q in scores}
    first = {q: {c["id"]: c["score"] for c in records[q]["candidates"]} for q in scores}
    # As the experiment's report ranks it: the fused head, then the rest of the first stage.
    fused = {q: reranked_run(first[q], fuse_scores(own, {d: first[q][d] for d in own}, alpha))
             for q, own in scores.items()}
    return evaluate_run(qrels, fused, ["ndcg@10"], per_query=True)["ndcg@10"]


def _steps(report: Path, reranker: dict) -> int:
    """The re-ranker's training steps: recorded, or (runs recorded before steps were) epochs x batches."""
    if reranker.get("steps"):
        return reranker["steps"]
    training = json.loads((report / "config.json").read_text())["training"]
    return training["epochs"] * math.ceil(reranker["train_rows"] / training["batch_size"])


def _per_query(report: Path, system: str) -> dict[str, float]:
    return json.loads((report / "per_query.json").read_text())[system]["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the full experiment's run folder")
    parser.add_argument("--report", type=Path, help="its report folder, when not the run folder (per_query.json)")
    parser.add_argument("--study", type=Path, required=True, help="the ensemble-cluster study's report folder")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    report = args.report or args.run
    results = json.loads((report / "results.json").read_text())
    study = json.loads((args.study / "results.json").read_text())

    # The shared re-ranker at the study's weight, from the run's scores: the study's per-query values, or the two
    # runs are not comparable.
    shared_alpha = study["rerankers"][SHARED]["fusion_alpha"]
    again = fused_per_query(args.run, SHARED, shared_alpha)
    published = _per_query(args.study, f"{SHARED} re-ranker + fusion")
    mismatch = max(abs(again[q] - published[q]) for q in published)
    if set(again) != set(published) or mismatch > 1e-9:
        raise SystemExit(f"The run and the study differ on {SHARED} (largest difference {mismatch}): not comparable.")

    rows, fused, alone = {}, {}, {}
    for strategy in (*FROM_RUN, FROM_STUDY):
        source = study if strategy == FROM_STUDY else results
        reranker = source["rerankers"][strategy]
        alpha = reranker["validation"]["argmax_alpha"]  # the best weight on its held-out queries
        if strategy == FROM_STUDY:
            if alpha != reranker["fusion_alpha"]:
                raise SystemExit(f"The study's {strategy} was fused at {reranker['fusion_alpha']}, not at its best "
                                 f"validation weight {alpha}: its per-query values cannot be used.")
            fused[strategy] = _per_query(args.study, f"{strategy} re-ranker + fusion")
            alone[strategy] = _per_query(args.study, f"{strategy} re-ranker")
        else:
            fused[strategy] = fused_per_query(args.run, strategy, alpha)
            alone[strategy] = _per_query(report, f"{strategy} re-ranker")
        rows[strategy] = {"mining": ROWS[strategy], "train_rows": reranker["train_rows"],
                          "steps": _steps(args.study if strategy == FROM_STUDY else report, reranker),
                          "fusion_weight": alpha,
                          "validation_queries": reranker["validation"]["queries"],
                          "validation_fused": reranker["validation"]["by_alpha"][str(alpha)]["ndcg@10"],
                          "validation_alone": reranker["validation"]["reranker_alone"]["ndcg@10"],
                          "test_fused": sum(fused[strategy].values()) / len(fused[strategy]),
                          "test_alone": sum(alone[strategy].values()) / len(alone[strategy])}
    first = _per_query(report, "first stage")
    queries = sorted(first)
    tests = {}
    for a in rows:
        tests[a] = {"first stage": paired_test_on_values(fused[a], first, queries)}
        for b in rows:
            if a != b:
                tests[a][b] = {"fused": paired_test_on_values(fused[a], fused[b], queries),
                               "alone": paired_test_on_values(alone[a], alone[b], queries)}
    out = {"machine": machine(), "test_queries": len(queries),
           "first_stage_ndcg@10": sum(first.values()) / len(first), "rows": rows, "paired_tests": tests,
           "shared_reranker_check": {"strategy": SHARED, "weight": shared_alpha, "largest_difference": mismatch}}
    atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
    print("| negatives mined by | steps | weight | validation: alone / fused | test: alone | test: fused | "
          "fused vs first stage |")
    print("|---|---|---|---|---|---|---|")
    for strategy, row in rows.items():
        versus = tests[strategy]["first stage"]
        print(f"| {row['mining']} ({strategy}) | {row['steps']} | {row['fusion_weight']} | "
              f"{row['validation_alone']:.3f} / {row['validation_fused']:.3f} | {row['test_alone']:.4f} | "
              f"{row['test_fused']:.4f} | {versus['difference']:+.3f} (p = {versus['p_value']:.2g}) |")
    for a, b in (("ensemble_cluster", "dense"), ("cluster_hybrid", "ensemble_cluster"), ("cluster_hybrid", "dense")):
        t = tests[a][b]
        print(f"{a} - {b}: fused {t['fused']['difference']:+.4f} (p = {t['fused']['p_value']:.2g}), "
              f"alone {t['alone']['difference']:+.4f} (p = {t['alone']['p_value']:.2g})")


if __name__ == "__main__":
    main()

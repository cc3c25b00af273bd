"""How many positives per question a training budget should spend on: the summary of `positives_study.yml`.

Each variant holds out its own validation questions (a question whose pairs all lost their negatives is not among
them), so the variants are compared on the held-out questions they all kept: graded nDCG@10 of each re-ranker
alone and fused at the weight its training chose, with paired t-tests against the default
(`max_positives_per_query: 5`) and the first stage. The test questions' figures come from the experiment's report.

    haystack-hardneg experiment benchmarks/semeval-cqa/positives_study.yml
    python benchmarks/semeval-cqa/positives_study.py runs/semeval-positives-study \
        --out benchmarks/semeval-cqa/positives_study.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from haystack_hardneg.evaluate.metrics import evaluate_run
from haystack_hardneg.evaluate.significance import paired_test_on_values
from haystack_hardneg.files import atomic_write_text, read_jsonl
from haystack_hardneg.mine.candidates import record_qrels
from haystack_hardneg.scoring.fusion import fuse_scores

BASELINE = "positives_5"


def validation(run: Path, results: dict, baseline: str = BASELINE) -> dict:
    """Per-variant validation figures on the held-out questions every variant kept, with paired tests."""
    scores = {v: json.loads((run / "rerank" / f"{v}.json").read_text())["validation"] for v in results["rerankers"]}
    common = sorted(set.intersection(*(set(s) for s in scores.values())))
    records = {r["query_id"]: r for r in read_jsonl(run / "first_stage" / "train_candidates.jsonl")}
    qrels = {q: record_qrels(records[q]) for q in common}
    first = {q: {c["id"]: c["score"] for c in records[q]["candidates"]} for q in common}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for variant, by_query in scores.items():
        alpha = results["rerankers"][variant]["fusion_alpha"]
        alone = {q: by_query[q] for q in common}
        fused = {q: fuse_scores(alone[q], {d: first[q][d] for d in alone[q]}, alpha) for q in common}
        per_query[variant] = {"alone": evaluate_run(qrels, alone, ["ndcg@10"], per_query=True)["ndcg@10"],
                              "fused": evaluate_run(qrels, fused, ["ndcg@10"], per_query=True)["ndcg@10"]}
    any_variant = next(iter(scores))
    first_stage = evaluate_run(qrels, {q: {d: first[q][d] for d in scores[any_variant][q]} for q in common},
                               ["ndcg@10"], per_query=True)["ndcg@10"]
    out = {"questions": len(common), "first_stage_ndcg@10": _mean(first_stage), "variants": {}}
    for variant, values in per_query.items():
        out["variants"][variant] = {
            "fusion_alpha": results["rerankers"][variant]["fusion_alpha"],
            "alone_ndcg@10": _mean(values["alone"]),
            "fused_ndcg@10": _mean(values["fused"]),
            "fused_vs_first_stage": paired_test_on_values(values["fused"], first_stage, common),
            "fused_vs_baseline": paired_test_on_values(values["fused"], per_query[baseline]["fused"], common),
        }
    return out


def test_figures(results: dict) -> dict:
    """nDCG@10 on the test questions, from the experiment's report."""
    systems = results["systems"]
    return {"first_stage_ndcg@10": systems["first stage"]["metrics"]["ndcg@10"],
            "variants": {v: {"alone_ndcg@10": systems[f"{v} re-ranker"]["metrics"]["ndcg@10"],
                             "fused_ndcg@10": systems[f"{v} re-ranker + fusion"]["metrics"]["ndcg@10"]}
                         for v in results["rerankers"]}}


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the study's run folder")
    parser.add_argument("--out", type=Path, help="write the summary here (JSON)")
    parser.add_argument("--baseline", default=BASELINE, help="the variant the others are tested against")
    args = parser.parse_args()
    results = json.loads((args.run / "results.json").read_text())
    summary = {"config": "benchmarks/semeval-cqa/positives_study.yml", "baseline": args.baseline,
               "validation": validation(args.run, results, args.baseline),
               "test": test_figures(results),
               "training": {v: {k: r.get(k) for k in ("train_rows", "train_seconds", "validation_queries")}
                            for v, r in results["rerankers"].items()},
               "pairs": results.get("strategy_pairs")}
    val, test = summary["validation"], summary["test"]
    print(f"Validation: {val['questions']} held-out questions kept by every variant; first stage "
          f"{val['first_stage_ndcg@10']:.3f}. Test: first stage {test['first_stage_ndcg@10']:.3f}.")
    print(f"| variant | rows | weight | val. alone | val. fused | vs first stage | vs {args.baseline} | test alone | "
          "test fused |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v, x in val["variants"].items():
        t = test["variants"][v]
        print(f"| {v} | {summary['training'][v]['train_rows']} | {x['fusion_alpha']} | {x['alone_ndcg@10']:.3f} | "
              f"{x['fused_ndcg@10']:.3f} | {x['fused_vs_first_stage']['difference']:+.3f} "
              f"(p={x['fused_vs_first_stage']['p_value']:.2g}) | {x['fused_vs_baseline']['difference']:+.3f} "
              f"(p={x['fused_vs_baseline']['p_value']:.2g}) | {t['alone_ndcg@10']:.3f} | {t['fused_ndcg@10']:.3f} |")
    if args.out:
        atomic_write_text(args.out, json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

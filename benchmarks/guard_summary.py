"""The false-negative guard's rules side by side on several data sets: the summary of the guard studies.

For each data set it reads the mining study (``benchmarks/guard_study.py``: pairs kept without filling, false
negatives let through with 30 % of the relevant documents hidden) and the trained study's report (the
experiment's ``results.json`` for a guard-study config: every pair filled, equal steps, the same held-out
queries), and puts one row per rule: pairs, false negatives, validation nDCG@10 alone and best fused, test nDCG@10
alone and fused at the validation's best weight, and the test against random negatives.

The default is chosen on validation, across data sets: another rule replaces it only when its re-ranker is better
than the default's on the validation queries of every data set, alone and fused; otherwise the default stays (weak
evidence keeps what users already have).

    python benchmarks/guard_summary.py \\
        --study semeval-cqa benchmarks/semeval-cqa/guard_study.json benchmarks/semeval-cqa/guard_study/results.json \\
        --study glasgow benchmarks/glasgow/guard_study.json benchmarks/glasgow/guard_study/results.json \\
        --json benchmarks/guard_summary.json --markdown benchmarks/guard_summary.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text

FILLED = ", filled beyond the window"
# Each trained variant's mining rule, by the rule names of guard_study.py.
RULES = {
    "ratio 0.95, pair's positive (default)": ("ensemble_cluster", "cluster_pair"),
    "ratio 0.95, lowest positive (NV-Retriever)": ("cluster_lowest",),
    "margin 0.10, pair's positive": ("cluster_margin",),
}
DEFAULT = "ratio 0.95, pair's positive (default)"


def _variant(results: dict, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in results["rerankers"]), None)


def _mining(study: dict, rule: str, strategy: str) -> dict:
    kept = study["rules"][rule][strategy]
    filled = study["rules"][rule + FILLED][strategy]
    return {"pairs": kept["pairs_asked"], "kept_without_filling": kept["pairs"],
            "filled_beyond_window": filled["pairs_filled_beyond_window"],
            "false_negative_rate_filled": filled["false_negative_rate"]}


def _trained(results: dict, variant: str) -> dict:
    reranker = results["rerankers"][variant]
    validation = reranker["validation"]
    row = {"variant": variant, "steps": reranker["steps"],
           "validation_queries": validation["queries"],
           "validation_alone": validation["reranker_alone"]["ndcg@10"],
           "validation_fused_best": validation["by_alpha"][str(validation["argmax_alpha"])]["ndcg@10"],
           "validation_best_weight": validation["argmax_alpha"],
           "validation_weight_p": validation["p_value"],
           "test_alone": results["systems"][f"{variant} re-ranker"]["metrics"]["ndcg@10"],
           "test_fused_at_best_weight": reranker["withheld"]["ndcg@10"] if reranker.get("withheld") else
           results["systems"][f"{variant} re-ranker + fusion"]["metrics"]["ndcg@10"],
           "test_shipped": results["systems"][f"{variant} re-ranker + fusion"]["metrics"]["ndcg@10"]}
    if variant != "random":
        versus = results["strategy_pairs"]["re-ranker"][variant]["random"]
        row["test_alone_vs_random"] = {"difference": versus["difference"], "p_value": versus["p_value"]}
    return row


def summarise(name: str, mining_file: Path, results_file: Path) -> dict:
    study = json.loads(mining_file.read_text())
    results = json.loads(results_file.read_text())
    rows = {}
    for rule, names in RULES.items():
        variant = _variant(results, names)
        rows[rule] = {"mining": _mining(study, rule, "ensemble_cluster"),
                      "trained": _trained(results, variant) if variant else None}
    rows["random negatives"] = {"mining": _mining(study, DEFAULT, "random"), "trained": _trained(results, "random")}
    first = results["rerankers"]["random"]["validation"]["first_stage"]["ndcg@10"]
    return {"data": name, "mining_study": str(mining_file), "trained_study": str(results_file),
            "mining_machine": study.get("machine"), "training_queries": study["queries"],
            "test_queries": results["test_queries"],
            "first_stage": {"validation": first, "test": results["systems"]["first stage"]["metrics"]["ndcg@10"]},
            "rules": rows}


def choose(studies: list[dict]) -> dict:
    """The default unless another rule beats it on every data set's validation, alone and fused."""
    better = []
    for rule in RULES:
        if rule == DEFAULT:
            continue
        rows = [(s["rules"][rule]["trained"], s["rules"][DEFAULT]["trained"]) for s in studies]
        if all(r and d and r["validation_alone"] > d["validation_alone"]
               and r["validation_fused_best"] > d["validation_fused_best"] for r, d in rows):
            better.append(rule)
    chosen = max(better, key=lambda r: sum(s["rules"][r]["trained"]["validation_fused_best"] for s in studies),
                 default=DEFAULT)
    why = (f"{chosen} beats the default on the validation queries of every data set, alone and fused" if better
           else "no other rule beats the default on the validation queries of every data set, alone and fused: "
                "the default stays")
    return {"rule": chosen, "why": why}


def markdown(studies: list[dict], choice: dict) -> str:
    lines = ["| data | guard rule | pairs kept without filling | filled beyond the window | false negatives (filled) "
             "| validation: alone / best fused (weight) | test: alone / fused at that weight | test alone vs random "
             "|", "|---|---|---|---|---|---|---|---|"]
    for study in studies:
        for rule, row in study["rules"].items():
            m, t = row["mining"], row["trained"]
            trained = ("not trained | | " if t is None else
                       f"{t['validation_alone']:.3f} / {t['validation_fused_best']:.3f} "
                       f"({t['validation_best_weight']}) | {t['test_alone']:.3f} / "
                       f"{t['test_fused_at_best_weight']:.3f} | ")
            versus = (t or {}).get("test_alone_vs_random")
            trained += f"{versus['difference']:+.3f} (p = {versus['p_value']:.2g})" if versus else ""
            lines.append(f"| {study['data']} | {rule} | {m['kept_without_filling']} of {m['pairs']} | "
                         f"{m['filled_beyond_window']} | {100 * m['false_negative_rate_filled']:.1f} % | {trained} |")
    lines += ["", f"Chosen: **{choice['rule']}** — {choice['why']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs=3, action="append", required=True, metavar=("NAME", "MINING", "RESULTS"))
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--markdown", required=True, type=Path)
    args = parser.parse_args()
    studies = [summarise(name, Path(m), Path(r)) for name, m, r in args.study]
    choice = choose(studies)
    atomic_write_text(args.json, json.dumps({"studies": studies, "default": choice, "machine": machine()},
                                              indent=2))
    atomic_write_text(args.markdown, markdown(studies, choice))
    print(markdown(studies, choice))


if __name__ == "__main__":
    main()

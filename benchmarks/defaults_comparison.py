"""An experiment's results before and after a change of defaults, side by side: for each strategy the pairs mining
kept (of those asked), the pairs filled from beyond the rank window, the training steps, and test nDCG@10 alone,
fused at the shipped weight and fused at the best validation weight; then, in the new run, ensemble_cluster against
random negatives (paired test, as the report computes it) and the largest share of pairs any strategy left out.

    python benchmarks/defaults_comparison.py \\
        --set semeval-cqa old/results.json benchmarks/semeval-cqa/results.json \\
        --json benchmarks/defaults_comparison.json --markdown benchmarks/defaults_comparison.md

Both files are an experiment's ``results.json`` (written by ``haystack-hardneg experiment``, or rebuilt from an
exported state with ``--import-state``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.experiment.report import AT_BEST_WEIGHT
from haystack_hardneg.files import atomic_write_text

BEST = AT_BEST_WEIGHT.strip()
KINDS = {"alone": "re-ranker", "fused (shipped weight)": "re-ranker + fusion", "fused (best validation weight)": BEST}


def _fused_at_best(results: dict, strategy: str) -> float | None:
    reranker = results["rerankers"][strategy]
    if reranker.get("withheld"):
        return reranker["withheld"]["ndcg@10"]
    fused = results["systems"].get(f"{strategy} re-ranker + fusion")
    return fused["metrics"]["ndcg@10"] if fused else None


def strategy_row(results: dict, strategy: str) -> dict:
    mining = results["mining"].get(strategy, {})
    systems = results["systems"]
    fused = systems.get(f"{strategy} re-ranker + fusion")
    return {"pairs_asked": mining.get("pairs_asked"), "pairs": mining.get("pairs"),
            "left_out": mining.get("left_out"), "filled_beyond_window": mining.get("pairs_filled_beyond_window"),
            "steps": results["rerankers"][strategy].get("steps"),
            "fusion_weight": results["rerankers"][strategy].get("fusion_alpha"),
            "alone": systems[f"{strategy} re-ranker"]["metrics"]["ndcg@10"],
            "fused_shipped": fused["metrics"]["ndcg@10"] if fused else None,
            "fused_best_validation_weight": _fused_at_best(results, strategy)}


def cluster_vs_random(results: dict) -> dict:
    """ensemble_cluster minus random, per kind of re-ranker, from the report's own paired tests."""
    pairs = results.get("strategy_pairs", {})
    return {label: pairs[kind]["ensemble_cluster"]["random"] for label, kind in KINDS.items()
            if "ensemble_cluster" in pairs.get(kind, {}) and "random" in pairs[kind]["ensemble_cluster"]}


def compare(old: dict, new: dict) -> dict:
    strategies = [s for s in new["rerankers"] if s in old["rerankers"]]
    left_out = {s: (new["mining"][s]["left_out"] or 0) / new["mining"][s]["pairs_asked"]
                for s in strategies if new["mining"].get(s, {}).get("pairs_asked")}
    return {"first_stage": {"old": old["systems"]["first stage"]["metrics"]["ndcg@10"],
                            "new": new["systems"]["first stage"]["metrics"]["ndcg@10"]},
            "strategies": {s: {"old": strategy_row(old, s), "new": strategy_row(new, s)} for s in strategies},
            "ensemble_cluster_vs_random": {"old": cluster_vs_random(old), "new": cluster_vs_random(new)},
            "largest_share_left_out": {"strategy": max(left_out, key=left_out.get), "share": max(left_out.values())}
            if left_out else None}


def _f(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(comparison: dict) -> str:
    lines = ["# Results before and after the change of defaults", ""]
    for name, entry in comparison["sets"].items():
        first = entry["first_stage"]
        lines += [f"## {name}", "", f"First stage nDCG@10: {_f(first['old'])} before, {_f(first['new'])} after.", "",
                  "| strategy | pairs kept (of asked) | filled beyond window | steps | alone | fused, shipped weight "
                  "| fused, best validation weight |", "|---|---|---|---|---|---|---|"]
        for strategy, rows in entry["strategies"].items():
            old, new = rows["old"], rows["new"]
            lines.append(f"| {strategy} | {old['pairs']} → {new['pairs']} (of {new['pairs_asked']}) "
                         f"| {_f(new['filled_beyond_window'])} | {old['steps']} → {new['steps']} "
                         f"| {_f(old['alone'])} → {_f(new['alone'])} "
                         f"| {_f(old['fused_shipped'])} → {_f(new['fused_shipped'])} "
                         f"| {_f(old['fused_best_validation_weight'])} → {_f(new['fused_best_validation_weight'])} |")
        lines += ["", "ensemble_cluster minus random (paired test on the test queries):", ""]
        for when in ("old", "new"):
            tests = entry["ensemble_cluster_vs_random"][when]
            text = "; ".join(f"{label} {t['difference']:+.4f} (p = {t['p_value']:.2g})" for label, t in tests.items())
            lines.append(f"- {'before' if when == 'old' else 'after'}: {text or '–'}")
        largest = entry["largest_share_left_out"]
        if largest:
            lines += ["", f"Largest share of pairs left out after: {largest['share']:.1%} ({largest['strategy']})."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "OLD", "NEW"),
                        help="a data set's name, its results.json before and after")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    sets = {name: compare(json.loads(Path(old).read_text()), json.loads(Path(new).read_text()))
            for name, old, new in args.set}
    comparison = {"machine": machine(), "sets": sets,
                  "files": {name: {"old": old, "new": new} for name, old, new in args.set}}
    atomic_write_text(args.json, json.dumps(comparison, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, markdown(comparison))
    print(markdown(comparison))


if __name__ == "__main__":
    main()

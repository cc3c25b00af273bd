"""How much of a difference between strategies is seed noise: one experiment repeated with other seeds.

A single run compares re-rankers trained once each; differences of 0.01-0.02 nDCG@10 are within what the seed
(negative sampling, clustering, training order, validation split) and the fusion weight chosen on ~80 validation
queries move. Repeat the run with other seeds into other folders, then read them together:

    haystack-hardneg experiment benchmarks/scifact/study_ensemble_cluster.yml --seed 1 \
        --out runs/study-seed1 --strategies bm25 cluster_hybrid
    python benchmarks/seed_repeats.py --runs runs/study-ensemble-cluster runs/study-seed1 runs/study-seed2 \
        --out benchmarks/scifact/study/seed_repeats.json

Each folder is a run folder or an ``--interim-report`` folder (``results.json`` and ``per_query.json``). Per system
present in every folder: its test nDCG@10 per seed, their mean and standard deviation; then each pair of systems
compared on the per-query nDCG@10 averaged over the seeds (paired t-test over the test queries, scipy), which
takes the seed's noise out of the per-query values instead of testing one draw.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path
from statistics import mean, stdev

from scipy.stats import ttest_rel

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text


def load(folder: Path, metric: str) -> tuple[int | None, dict[str, dict[str, float]]]:
    """The run's seed (its training seed where that was set apart) and each system's per-query values."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    per_query = json.loads((folder / "per_query.json").read_text(encoding="utf-8"))
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    seed = config.get("training_seed")
    seed = config.get("seed") if seed is None else seed
    return results.get("seed", seed), {system: values[metric] for system, values in per_query.items()}


def summarise(loaded: list[dict[str, dict[str, float]]]) -> dict:
    """Per system present in every run: its mean over the queries per run, their mean and sd; each pair of systems
    compared on the per-query values averaged over the runs (paired t-test over the queries)."""
    systems = [s for s in loaded[0] if all(s in values for values in loaded)]
    if not systems:
        raise SystemExit("The folders share no system.")
    queries = sorted(set.intersection(*(set(values[s]) for values in loaded for s in systems)))
    if not queries:
        raise SystemExit("The folders share no query.")
    averaged = {s: [mean(values[s][q] for values in loaded) for q in queries] for s in systems}
    rows = {}
    for system in systems:
        per_seed = [mean(values[system][q] for q in queries) for values in loaded]
        rows[system] = {"per_seed": [round(v, 4) for v in per_seed], "mean": round(mean(per_seed), 4),
                        "sd": round(stdev(per_seed), 4) if len(per_seed) > 1 else None}
    pairs = {}
    for a, b in combinations(systems, 2):
        difference = mean(averaged[a]) - mean(averaged[b])
        p_value = float(ttest_rel(averaged[a], averaged[b]).pvalue) if difference else 1.0
        pairs[f"{a} | {b}"] = {"difference": round(difference, 4), "p_value": p_value}
    return {"queries": len(queries), "systems": rows, "pairs_on_seed_averaged_queries": pairs}


def tables(summary: dict) -> str:
    lines = ["| system | per seed | mean | sd |", "|---|---|---|---|"]
    for system, row in summary["systems"].items():
        sd = "" if row["sd"] is None else f"{row['sd']:.4f}"
        lines.append(f"| {system} | {' / '.join(f'{v:.4f}' for v in row['per_seed'])} | {row['mean']:.4f} | {sd} |")
    lines += ["", "| row - column (seed-averaged per query) | difference | p |", "|---|---|---|"]
    lines += [f"| {pair} | {c['difference']:+.4f} | {c['p_value']:.3g} |"
              for pair, c in summary["pairs_on_seed_averaged_queries"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.runs) < 2:
        parser.error("give at least two run folders (the same config with different seeds)")

    loaded = [load(folder, args.metric) for folder in args.runs]
    results = {"runs": [str(r) for r in args.runs], "seeds": [seed for seed, _ in loaded], "metric": args.metric,
               "machine": machine(), **summarise([values for _, values in loaded])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(f"{len(args.runs)} runs (seeds {results['seeds']}), {results['queries']} test queries, {args.metric}\n")
    print(tables(results))


if __name__ == "__main__":
    main()

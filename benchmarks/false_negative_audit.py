"""A blind audit of mined negatives: how many are relevant documents that SciFact's labels miss?

    python benchmarks/false_negative_audit.py sample runs/experiment-scifact/mine bm25 ensemble_cluster \
        --per-strategy 25 --out benchmarks/scifact/false_negative_audit
    (judge items.md: one line per item in judgments.jsonl, {"item": 3, "relevant": true, "why": "..."})
    python benchmarks/false_negative_audit.py score benchmarks/scifact/false_negative_audit

``sample`` draws, per strategy, seeded triplet rows and one of their negatives at random, shuffles all items
together and writes them without the strategy (items.md, for the judge) and the key apart (key.jsonl). ``score``
joins the judgments with the key: the share of negatives judged relevant per strategy, with a Wilson 95% interval.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.files import atomic_write_text, read_jsonl


def sample(mine: Path, strategies: list[str], per_strategy: int, seed: int, out: Path) -> None:
    rng = random.Random(seed)
    items = []
    for strategy in strategies:
        triplets = read_jsonl(mine / strategy / "triplets.jsonl")
        provenance = read_jsonl(mine / strategy / "provenance.jsonl")
        for row in rng.sample(range(len(triplets)), per_strategy):
            k = rng.randrange(len(provenance[row]["negative_ids"]))
            items.append({"strategy": strategy, "query_id": provenance[row]["query_id"],
                          "negative_id": provenance[row]["negative_ids"][k],
                          "negative_rank": provenance[row]["negative_ranks"][k],
                          "query": triplets[row]["query"], "negative": triplets[row][f"negative_{k + 1}"],
                          "positive": triplets[row]["positive"]})
    rng.shuffle(items)
    lines = ["# Mined negatives to judge (strategy hidden)", "",
             "Relevant = the abstract gives evidence that supports or refutes the claim (SciFact's rule).", ""]
    for number, item in enumerate(items):
        lines += [f"## item {number}", f"**claim:** {item['query']}", "",
                  f"**labelled positive (start):** {item['positive'][:300]}", "",
                  f"**negative:** {item['negative']}", ""]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "items.md", "\n".join(lines))
    atomic_write_text(out / "key.jsonl", "".join(
        json.dumps({"item": n, **{k: item[k] for k in ("strategy", "query_id", "negative_id", "negative_rank")}}) + "\n"
        for n, item in enumerate(items)))


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (round(centre - half, 3), round(centre + half, 3))


def score(folder: Path) -> dict:
    key = {row["item"]: row for row in read_jsonl(folder / "key.jsonl")}
    judgments = {row["item"]: row for row in read_jsonl(folder / "judgments.jsonl")}
    missing = sorted(set(key) - set(judgments))
    if missing:
        raise SystemExit(f"{len(missing)} item(s) not judged yet, e.g. {missing[:5]}")
    results = {}
    for strategy in sorted({row["strategy"] for row in key.values()}):
        judged = [judgments[n] for n, row in key.items() if row["strategy"] == strategy]
        relevant = sum(bool(j["relevant"]) for j in judged)
        clear = sum(j.get("grade") == "clear" for j in judged)
        results[strategy] = {"judged": len(judged), "judged_relevant": relevant,
                             "share": round(relevant / len(judged), 3), "wilson_95": wilson(relevant, len(judged)),
                             "clearly_relevant": clear, "clear_wilson_95": wilson(clear, len(judged)),
                             "relevant_items": sorted(n for n, row in key.items()
                                                      if row["strategy"] == strategy and judgments[n]["relevant"])}
    atomic_write_text(folder / "scores.json", json.dumps({**results, "machine": machine()}, indent=2))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    draw = commands.add_parser("sample")
    draw.add_argument("mine", type=Path, help="an experiment's mine/ folder")
    draw.add_argument("strategies", nargs="+")
    draw.add_argument("--per-strategy", type=int, default=25)
    draw.add_argument("--seed", type=int, default=7)
    draw.add_argument("--out", type=Path, required=True)
    tally = commands.add_parser("score")
    tally.add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.mine, args.strategies, args.per_strategy, args.seed, args.out)
    else:
        print(json.dumps(score(args.folder), indent=2))


if __name__ == "__main__":
    main()

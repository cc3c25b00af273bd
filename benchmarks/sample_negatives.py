"""Print random mined negatives with their query and positive, for a person to judge (seeded).

    python benchmarks/sample_negatives.py runs/mine/ensemble_cluster --count 10 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chars", type=int, default=220)
    args = parser.parse_args()
    triplets = [json.loads(line) for line in (args.folder / "triplets.jsonl").read_text().splitlines()]
    provenance = [json.loads(line) for line in (args.folder / "provenance.jsonl").read_text().splitlines()]
    rng = random.Random(args.seed)
    for row in rng.sample(range(len(triplets)), args.count):
        k = rng.randrange(len(provenance[row]["negative_ids"]))
        p, t = provenance[row], triplets[row]
        print(f"### query {p['query_id']}: {t['query']}")
        print(f"positive {p['positive_id']} (score {p['positive_score']:.3f}): {t['positive'][:args.chars]}")
        print(f"negative {p['negative_ids'][k]} (score {p['negative_scores'][k]:.3f}, rank {p['negative_ranks'][k]}): "
              f"{t[f'negative_{k + 1}'][:args.chars]}\n")


if __name__ == "__main__":
    main()

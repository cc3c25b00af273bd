"""Cut a small, self-contained BEIR slice out of SciFact (all judged documents of the chosen queries,
plus random unjudged ones as distractors). Used to make the demo slice (src/haystack_hardneg/demo/scifact-mini) and
the test fixture.

    python scripts/make_scifact_slice.py path/to/beir/scifact OUT --test-queries 60 --train-queries 120 --docs 600
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def read_qrels(path: Path) -> dict[str, dict[str, str]]:
    qrels: dict[str, dict[str, str]] = {}
    for line in path.read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        qrels.setdefault(q, {})[d] = s
    return qrels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--test-queries", type=int, default=60)
    parser.add_argument("--train-queries", type=int, default=120)
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = [json.loads(line) for line in (args.source / "corpus.jsonl").read_text().splitlines() if line.strip()]
    queries = {json.loads(line)["_id"]: line for line in (args.source / "queries.jsonl").read_text().splitlines()
               if line.strip()}
    chosen: dict[str, dict[str, dict[str, str]]] = {}
    for split, count in (("test", args.test_queries), ("train", args.train_queries)):
        qrels = read_qrels(args.source / "qrels" / f"{split}.tsv")
        ids = sorted(qrels)
        rng.shuffle(ids)
        chosen[split] = {q: qrels[q] for q in sorted(ids[:count])}
    judged = {d for split in chosen.values() for docs in split.values() for d in docs}
    others = sorted(d["_id"] for d in corpus if d["_id"] not in judged)
    rng.shuffle(others)
    keep = judged | set(others[: max(0, args.docs - len(judged))])
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    with (args.out / "corpus.jsonl").open("w") as handle:
        for doc in corpus:
            if doc["_id"] in keep:
                handle.write(json.dumps(doc) + "\n")
    with (args.out / "queries.jsonl").open("w") as handle:
        for q in sorted({q for split in chosen.values() for q in split}, key=int):
            handle.write(queries[q] + "\n")
    for split, qrels in chosen.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, docs in qrels.items()
                                                  for d, s in docs.items()]
        (args.out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(keep)} documents, " + ", ".join(f"{len(v)} {k} queries" for k, v in chosen.items()))


if __name__ == "__main__":
    main()

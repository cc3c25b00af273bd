"""Scale: 1,000,000 synthetic 384-d documents and 10,000 queries, mined on this machine.

Documents are drawn around 2,000 random topic centres (unit vectors plus noise), queries likewise, each query
with one positive from its topic. Reports wall time per stage and the process's peak resident memory.

    python benchmarks/mining_scale.py --documents 1000000 --queries 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.mine.data import MiningData
from haystack_hardneg.mine.negatives import mine_negatives


def _peak_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def synthetic(n_docs: int, n_queries: int, dim: int, topics: int, seed: int) -> MiningData:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    doc_topics = rng.integers(0, topics, n_docs)
    docs = np.empty((n_docs, dim), dtype=np.float32)
    for start in range(0, n_docs, 100_000):  # bounded temporaries
        block = centres[doc_topics[start : start + 100_000]]
        block += 0.08 * rng.standard_normal(block.shape, dtype=np.float32)
        docs[start : start + 100_000] = block / np.linalg.norm(block, axis=1, keepdims=True)
    query_topics = rng.integers(0, topics, n_queries)
    queries = centres[query_topics] + 0.08 * rng.standard_normal((n_queries, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    by_topic: dict[int, int] = {}
    for i, t in enumerate(doc_topics[:200_000]):
        by_topic.setdefault(int(t), i)
    positives = {f"q{j}": [f"d{by_topic[int(t)]}"] for j, t in enumerate(query_topics) if int(t) in by_topic}
    return MiningData(
        doc_ids=[f"d{i}" for i in range(n_docs)], doc_texts=[""] * n_docs, doc_vectors=docs,
        query_ids=[f"q{j}" for j in range(n_queries)], query_texts=[""] * n_queries, query_vectors=queries,
        positives=positives,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--strategies", nargs="+", default=["ensemble_cluster", "ensemble", "random"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/scale/mining_scale.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    data = synthetic(args.documents, args.queries, args.dim, topics=2000, seed=0)
    record = {"command": f"python benchmarks/mining_scale.py --documents {args.documents} --queries {args.queries}",
              "documents": args.documents, "queries": args.queries, "dim": args.dim,
              "generate_seconds": round(time.perf_counter() - started, 1), "peak_memory_gib_after_data": _peak_gib(),
              "machine": machine(), "strategies": {}}
    print(record, flush=True)
    for strategy in args.strategies:
        started = time.perf_counter()
        result = mine_negatives(data, MiningConfig(strategy=strategy, num_negatives=5, rank_window=(0, 100)))
        record["strategies"][strategy] = {
            "seconds": round(time.perf_counter() - started, 1),
            "pairs": len(result.pairs),
            "clusters": int(len(result.clustering.centroids)) if result.clustering is not None else None,
            "peak_memory_gib_so_far": _peak_gib(),
        }
        print(strategy, record["strategies"][strategy], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

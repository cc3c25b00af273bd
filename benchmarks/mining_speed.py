"""Mining speed against sentence-transformers' ``mine_hard_negatives`` on the same embeddings (SciFact train).

Both sides read precomputed all-MiniLM-L6-v2 embeddings (ours from the embedding cache, sentence-transformers'
from its ``cache_folder``, filled by an untimed first call) and mine the same number of negatives per pair from
the same corpus, exact search on the CPU, no FAISS. Then every strategy of ours is timed on the same data, and
the mining report of each is written beside (with the negatives themselves, for a person to judge).

    python benchmarks/mining_speed.py --data examples/data/scifact --models ~/.cache/hardneg-models
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives

from haystack_hardneg import ClusterNegativeMiner, EnsembleTextEmbedder
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.mine.config import STRATEGIES
from haystack_hardneg.mine.negatives import mine_negatives

NUM_NEGATIVES = 5
REPEATS = 5  # best of: sub-second timings are noisy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("examples/data/scifact"))
    parser.add_argument("--models", type=Path, default=Path("~/.cache/hardneg-models").expanduser())
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/haystack-hardneg/embeddings").expanduser()))
    parser.add_argument("--work", type=Path, default=Path("runs/mining-speed"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/scifact/mining_speed.json"))
    args = parser.parse_args()
    model_path = str(args.models / "all-MiniLM-L6-v2")
    split = load_beir(args.data, "train")
    texts = {d.id: f"{d.meta.get('title', '')} {d.content}".strip() for d in split.corpus}
    pairs = [(split.queries[q], texts[d]) for q, judged in split.qrels.items() for d, g in judged.items() if g > 0]
    dataset = Dataset.from_dict({"query": [p[0] for p in pairs], "positive": [p[1] for p in pairs]})
    corpus = list(texts.values())

    model = SentenceTransformer(model_path)
    miner = ClusterNegativeMiner(
        text_embedder=EnsembleTextEmbedder(members=[model_path], cache_dir=args.cache_dir),
        mining={"num_negatives": NUM_NEGATIVES, "rank_window": (0, 100), "strategy": "ensemble"},
        meta_fields_to_embed=["title"], embedding_separator=" ", progress_bar=False,
    )
    miner.warm_up()
    miner.mining_data(split.queries, split.qrels, split.corpus)  # untimed: fills our cache with the train queries

    def ours(strategy: str, guard_ratio: float | None):
        started = time.perf_counter()
        data, _ = miner.mining_data(split.queries, split.qrels, split.corpus)  # reads the embedding cache
        loaded = time.perf_counter()
        result = mine_negatives(data, replace(miner.config, strategy=strategy, guard_ratio=guard_ratio),
                                progress_bar=False)
        finished = time.perf_counter()
        return (finished - started, loaded - started, finished - loaded), len(result.pairs)

    # Like for like: sentence-transformers' relative_margin=0.05 is the same rule as our guard ratio 0.95
    # (a candidate scoring above 0.95 x the positive is not used); without it, both take the plain top-k.
    comparisons = {}
    for label, relative_margin, guard_ratio in (("no_guard", None, None), ("guard_0.95", 0.05, 0.95)):
        st_kwargs = dict(corpus=corpus, num_negatives=NUM_NEGATIVES, range_min=0, range_max=100,
                         sampling_strategy="top", output_format="n-tuple", batch_size=32,
                         relative_margin=relative_margin, cache_folder=str(args.work / "st-cache"), verbose=False)
        mine_hard_negatives(dataset, model, **st_kwargs)  # untimed: fills sentence-transformers' embedding cache
        st_best, ours_best = None, None
        # Alternating rounds, best of REPEATS each: neither side profits from a warmer machine.
        for _ in range(REPEATS):
            started = time.perf_counter()
            st_result = mine_hard_negatives(dataset, model, **st_kwargs)
            elapsed = time.perf_counter() - started
            st_best = elapsed if st_best is None else min(st_best, elapsed)
            timing, n_pairs = ours("ensemble", guard_ratio)
            ours_best = timing if ours_best is None or timing[0] < ours_best[0] else ours_best
        comparisons[label] = {
            "sentence_transformers_seconds": round(st_best, 3), "sentence_transformers_rows": len(st_result),
            "ours_ensemble_seconds": round(ours_best[0], 3), "ours_load_seconds": round(ours_best[1], 3),
            "ours_mine_seconds": round(ours_best[2], 3), "ours_pairs": n_pairs,
            "speedup": round(st_best / ours_best[0], 2),
        }
        print(label, comparisons[label], flush=True)

    timings = {}
    for strategy in STRATEGIES:
        if strategy == "dense":
            continue  # identical to "ensemble" with one member
        best = None
        for _ in range(REPEATS):
            timing, n_pairs = ours(strategy, miner.config.guard_ratio)
            best = timing if best is None or timing[0] < best[0] else best
        timings[strategy] = {"total_seconds": round(best[0], 3), "load_seconds": round(best[1], 3),
                             "mine_seconds": round(best[2], 3), "pairs": n_pairs}
        print(strategy, timings[strategy], flush=True)
    record = {
        "command": "python benchmarks/mining_speed.py",
        "data": "SciFact train (809 queries, 919 pairs), 5,183 documents; all-MiniLM-L6-v2 embeddings, precomputed",
        "num_negatives": NUM_NEGATIVES,
        "rank_window": [0, 100],
        "repeats_best_of": REPEATS,
        "machine": machine(),
        "like_for_like_vs_sentence_transformers": comparisons,
        "haystack_hardneg_strategies_default_guard": timings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

"""The false-negative guard on data with many relevant documents per query: per guard rule and strategy, the
(query, positive) pairs kept, and the false negatives let through, measured with the labels themselves.

A seeded share of each query's judged-relevant documents is hidden from the miner (they become unjudged, as the
relevant documents nobody labelled are); a hidden document mined as a negative is a false negative the guard let
through, and one the guard held back is a false negative it caught. Mining only, no training: a rule's effect on
the re-ranker needs the experiment (equal steps, validation then test), this shows what each rule costs in pairs
and buys in label noise.

    python benchmarks/guard_study.py benchmarks/semeval-cqa/experiment.yml --out runs/guard-study-semeval \
        --json benchmarks/semeval-cqa/guard_study.json

The run folder holds the experiment's index (built on first use, reused after); the JSON records the CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import replace
from pathlib import Path

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.experiment.runner import Experiment
from haystack_hardneg.experiment.upstream import training_queries
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.mine.component import ClusterNegativeMiner
from haystack_hardneg.mine.negatives import mine_negatives

# Each rule: the mining options it sets over the config's mining section.
RULES: dict[str, dict] = {
    "ratio 0.95, pair's positive (default)": {"guard_ratio": 0.95},
    "ratio 0.95, lowest positive (NV-Retriever)": {"guard_ratio": 0.95, "guard_reference": "lowest"},
    "ratio 0.95, highest positive": {"guard_ratio": 0.95, "guard_reference": "highest"},
    "ratio 0.98, pair's positive": {"guard_ratio": 0.98},
    "margin 0.05, pair's positive": {"guard_ratio": None, "guard_margin": 0.05},
    "margin 0.10, pair's positive": {"guard_ratio": None, "guard_margin": 0.10},
    "ratio 0.95, without member agreement": {"guard_ratio": 0.95, "guard_member_agreement": False},
    "no guard": {"guard_ratio": None, "guard_member_agreement": False},
}
HIDDEN_SHARE = 0.3


def hide(qrels: dict[str, dict[str, int]], min_relevance: int, seed: int
         ) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """``qrels`` with a seeded ``HIDDEN_SHARE`` of each query's relevant documents removed (each query keeps at
    least one positive), and the hidden ones."""
    rng = random.Random(seed)
    shown, hidden = {}, {}
    for query, judged in sorted(qrels.items()):
        relevant = sorted(d for d, g in judged.items() if g > 0)
        count = math.floor(len(relevant) * HIDDEN_SHARE)
        chosen = set(rng.sample(relevant, count)) if count else set()
        if not any(judged[d] >= min_relevance for d in relevant if d not in chosen):
            chosen = set()
        shown[query] = {d: g for d, g in judged.items() if d not in chosen}
        hidden[query] = chosen
    return shown, hidden


def measure(result, hidden: dict[str, set[str]]) -> dict:
    negatives = [(p.query_id, d) for p in result.pairs for d in p.negative_ids]
    let_through = sum(d in hidden.get(q, ()) for q, d in negatives)
    caught = sum(s["doc_id"] in hidden.get(q, ()) for q, found in result.suspected_positives.items() for s in found)
    return {"pairs_asked": result.pairs_asked, "pairs": len(result.pairs),
            "pairs_left_out": result.pairs_asked - len(result.pairs),
            "pairs_filled_beyond_window": sum(1 for p in result.pairs if p.fallback),
            "negatives": len(negatives), "false_negatives_let_through": let_through,
            "false_negative_rate": round(let_through / max(len(negatives), 1), 5),
            "hidden_relevant_held_back": caught, "held_back_by_rule": result.held_back_by_rule}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--out", required=True, help="run folder for the experiment's index")
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--strategies", nargs="+")
    args = parser.parse_args()
    config = ExperimentConfig.from_yaml(args.config, out=args.out)
    strategies = args.strategies or list(config.strategies)
    experiment = Experiment(config)
    experiment.ensure("index")
    queries, qrels = training_queries(config, experiment.splits["train"])
    shown, hidden = hide(qrels, config.min_relevance, config.seed)
    miner = ClusterNegativeMiner(text_embedder=experiment.text_embedder(), document_store=experiment.store(),
                                 mining=config.mining_config(strategies[0]), meta_fields_to_embed=config.meta_fields,
                                 on_missing=config.on_missing, min_relevance=config.min_relevance,
                                 embedding_separator=config.separator, progress_bar=False)
    miner.warm_up()
    data, _ = miner.mining_data(queries, shown)
    results: dict = {"config": args.config, "hidden_share": HIDDEN_SHARE, "machine": machine(),
                     "hidden_relevant": sum(len(h) for h in hidden.values()), "queries": len(queries), "rules": {}}
    for rule, options in RULES.items():
        for fill in (False, True):
            name = f"{rule}{', filled beyond the window' if fill else ''}"
            results["rules"][name] = {}
            for strategy in strategies:
                mining = replace(config.mining_config(strategy), **options, fill_beyond_window=fill)
                results["rules"][name][strategy] = measure(mine_negatives(data, mining, progress_bar=False), hidden)
                print(name, strategy, results["rules"][name][strategy], flush=True)
            atomic_write_text(args.json, json.dumps(results, indent=2))
    experiment.close()


if __name__ == "__main__":
    main()

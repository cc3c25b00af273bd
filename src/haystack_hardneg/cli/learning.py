"""``mine`` and ``train``: hard negatives for a BEIR split, and a cross-encoder fine-tuned on them.

Their mining and training flags are generated from ``MiningConfig`` and ``TrainingConfig``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from haystack_hardneg.cli.common import (
    add_ensemble_arguments,
    add_store_arguments,
    embedder_dimension,
    ensemble_settings,
    open_store,
)
from haystack_hardneg.cli.serving import (
    add_train_export_arguments,
    export_after_training,
    export_config_for_training,
)
from haystack_hardneg.defaults import default_model
from haystack_hardneg.embed.components import EnsembleTextEmbedder
from haystack_hardneg.extras import require
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.ingest.beir import load_beir
from haystack_hardneg.mine.candidates import first_stage_candidates, write_candidates
from haystack_hardneg.mine.component import ClusterNegativeMiner, skipped_when_loading
from haystack_hardneg.mine.config import (
    LEXICAL_FUSION_STRATEGIES,
    STRATEGIES,
    MiningConfig,
    check_fits_ensemble,
    uses_bm25,
)
from haystack_hardneg.mine.job import mine_into
from haystack_hardneg.mine.report import comparison_table, format_report
from haystack_hardneg.options import add_arguments, from_arguments
from haystack_hardneg.train.component import TripletTrainer
from haystack_hardneg.train.config import TrainingConfig


def add_mine_parser(commands) -> None:
    mine = commands.add_parser("mine", help="mine hard negatives for a BEIR split (one or more strategies)")
    mine.add_argument("--data", type=Path, required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    mine.add_argument("--split", default="train")
    mine.add_argument("--strategy", action="append", choices=["all", *STRATEGIES],
                      help="repeat for several (default all)")
    add_arguments(mine.add_argument_group("mining"), MiningConfig)
    mine.add_argument("--from-store", action="store_true", help="read document vectors from the Qdrant store")
    mine.add_argument("--skip-missing", action="store_true", help="drop and count judgements of unknown ids")
    mine.add_argument("--min-relevance", type=int, default=1,
                      help="the lowest grade that makes a judged document a positive (documents of any grade above 0 "
                           "are never negatives)")
    mine.add_argument("--meta-field", action="append", help="meta fields before the text (default: title)")
    mine.add_argument("--separator", default=" ")
    mine.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    mine.add_argument("--candidates-k", type=int, default=30,
                      help="write each query's top-k ensemble candidates to OUT/candidates.jsonl (validation); 0: off")
    mine.add_argument("--out", default="runs/mine")
    add_ensemble_arguments(mine)
    add_store_arguments(mine)
    mine.set_defaults(func=cmd_mine, strategy=None)


def mining_configs(args: argparse.Namespace, members: int, combine: str) -> dict[str, MiningConfig]:
    """One config per strategy asked for, every one checked against the ensemble before anything is embedded;
    ``--lexical-weight`` changes the ensemble strategies only."""
    strategies = list(STRATEGIES) if not args.strategy or "all" in args.strategy else args.strategy
    lexical_weight = getattr(args, "lexical_weight", None)
    if lexical_weight is not None and not set(strategies) & set(LEXICAL_FUSION_STRATEGIES):
        raise ValueError(f"--lexical-weight changes only {LEXICAL_FUSION_STRATEGIES}; none of them is mined here.")
    configs = {s: from_arguments(MiningConfig, args, strategy=s,
                                 lexical_weight=lexical_weight if s in LEXICAL_FUSION_STRATEGIES else None)
               for s in strategies}
    for config in configs.values():
        check_fits_ensemble(config, members, combine)
    if any(uses_bm25(config) for config in configs.values()):
        require("bm25s", f"Mining with {strategies}")  # before anything is embedded
    return configs


def _store_dimension(embedder) -> int:
    """The collection's vector size: the ensemble's, or the stored member's when one is (the user's own index)."""
    dimension = embedder_dimension(embedder)
    stored = embedder.encoder.stored_member
    return dimension if stored is None else embedder.encoder.member_dimensions[stored]


def cmd_mine(args: argparse.Namespace) -> int:
    """Mine negatives for a BEIR split with one or more strategies; one folder of files per strategy."""
    on_missing = "skip" if args.skip_missing else "error"
    settings = ensemble_settings(args)
    embedder = EnsembleTextEmbedder(members=settings["members"], combine=settings["combine"],
                                    cache_dir=settings["cache_dir"], progress_bar=True)
    configs = mining_configs(args, len(embedder.members), embedder.combine)
    split = load_beir(args.data, args.split, on_missing=on_missing, min_relevance=args.min_relevance)
    store = open_store(args, _store_dimension(embedder)) if args.from_store else None
    try:
        miner = ClusterNegativeMiner(text_embedder=embedder, document_store=store,
                                     mining=next(iter(configs.values())), meta_fields_to_embed=args.meta_field or
                                     ["title"], embedding_separator=args.separator, on_missing=on_missing,
                                     min_relevance=args.min_relevance)
        miner.warm_up()
        data, stats = miner.mining_data(split.queries, split.qrels, None if args.from_store else split.corpus)
    finally:
        if store is not None:  # local mode locks the folder until the client closes
            store.close()
    # load_beir already validated the split; count what it and the miner's own validation left out.
    stats.add(split.stats)
    skipped = skipped_when_loading(stats)
    out = Path(args.out)
    if args.candidates_k:
        write_candidates(out / "candidates.jsonl", first_stage_candidates(data, args.candidates_k))
    reports = {}
    for strategy, config in configs.items():
        reports[strategy] = mine_into(out / strategy, data, config, skipped_when_loading=skipped,
                                      file_format=args.format)
        print(format_report(reports[strategy]), flush=True)
    table = comparison_table(reports)
    atomic_write_text(out / "mining_report.md", table)
    atomic_write_text(out / "mining_report.json", json.dumps(reports, indent=2))
    print("\n" + table + f"\nWritten to {out}/")
    return 0


def add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="fine-tune a cross-encoder on mined triplets")
    train.add_argument("--triplets", required=True, help="triplets.jsonl or .parquet from `mine`")
    add_arguments(train.add_argument_group("training"), TrainingConfig, skip=("strategy",),
                  defaults={"base_model": default_model(), "output_dir": "runs/train"})
    train.add_argument("--strategy", help="negative strategy of the triplets (default: their folder name)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.add_argument("--candidates", default="auto",
                       help="first-stage candidates to validate on: a candidates.jsonl, auto (beside the triplets) "
                            "or none (mined negatives)")
    add_train_export_arguments(train)
    train.set_defaults(func=cmd_train)


def _candidates_path(args: argparse.Namespace) -> str | None:
    """``--candidates``: a path, ``none``, or ``auto`` = the miner's candidates.jsonl beside the triplets."""
    if str(args.candidates).lower() == "none":
        return None
    if str(args.candidates).lower() != "auto":
        return str(args.candidates)
    folder = Path(args.triplets).parent
    for candidate in (folder / "candidates.jsonl", folder.parent / "candidates.jsonl"):
        if candidate.is_file():
            print(f"Validating on the first-stage candidates in {candidate}")
            return str(candidate)
    print("No candidates.jsonl beside the triplets: validating on mined negatives (optimistic).")
    return None


def training_config(args: argparse.Namespace) -> TrainingConfig:
    """The flags given (``--base-model`` defaults to the local all-MiniLM-L6-v2), and what the command fills in:
    the strategy, the validation candidates, the description."""
    return from_arguments(TrainingConfig, args, strategy=args.strategy or Path(args.triplets).parent.name,
                          validation_candidates=_candidates_path(args),
                          data_description=f"triplets from {args.triplets}")


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune a cross-encoder on a triplet file."""
    config = training_config(args)
    export = export_config_for_training(args, str(Path(config.output_dir) / "model"))
    result = TripletTrainer(training=config, resume=args.resume).run(triplets=args.triplets)
    report = result["report"]
    print(json.dumps({"model": result["model_path"], "loss": report["config"]["loss"], "steps": report["steps"],
                      "validation": report["validation"], "validation_on": report["validation_on"],
                      "best_checkpoint": report["best_checkpoint"]}, indent=2))
    if report.get("fusion"):
        fusion = report["fusion"]
        print(f"Validation nDCG@10: first stage {fusion['first_stage']['ndcg@10']:.4f}, re-ranker alone "
              f"{fusion['reranker_alone']['ndcg@10']:.4f}, fused at alpha {fusion['best_alpha']} "
              f"{fusion['best']['ndcg@10']:.4f} (stored with the model; `haystack-hardneg tune` chooses one for "
              f"your own pipeline).")
        if fusion.get("fallback"):
            print(f"WARNING: the re-ranker did not beat the first stage: {fusion['fallback']}. Try more training "
                  f"queries, another negative strategy or more steps, and measure your pipeline with "
                  f"`haystack-hardneg evaluate`.", file=sys.stderr)
    print(f"Training curves: {Path(config.output_dir) / 'training_curves.png'}")
    export_after_training(export, result["model_path"])
    return 0

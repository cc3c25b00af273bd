"""The ``haystack-hardneg`` command line: thin argument parsing over the same functions the components use."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.train.heads import HEADS

DEFAULT_MODELS_DIR = "~/.cache/hardneg-models"
DEFAULT_CACHE_DIR = "~/.cache/haystack-hardneg/embeddings"


def _default_model() -> str:
    """all-MiniLM-L6-v2 from the local models folder when it is there, else its hub id."""
    local = Path(os.environ.get("HARDNEG_MODELS", DEFAULT_MODELS_DIR)).expanduser() / "all-MiniLM-L6-v2"
    return str(local) if local.is_dir() else "sentence-transformers/all-MiniLM-L6-v2"


def _add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ensemble (ignored with --pipeline)")
    group.add_argument("--model", action="append", help="member model: hub id or local folder (repeat for an ensemble)")
    group.add_argument("--weight", action="append", type=float, help="member weight, one per --model (default 1)")
    group.add_argument("--ensemble", type=Path, help="YAML/JSON file with 'members' (MemberSpec fields) and 'combine'")
    group.add_argument("--combine", choices=["concat", "mean"], default=None, help="how member vectors are combined")
    group.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="embedding cache folder ('none' disables it)")


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Qdrant store (ignored with --pipeline)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--store", default="qdrant-data", help="folder of Qdrant's embedded local mode (default)")
    where.add_argument("--url", help="a Qdrant server or cluster, e.g. http://localhost:6333")
    group.add_argument("--api-key-env", default="QDRANT_API_KEY", help="environment variable holding the API key")
    group.add_argument("--index", default="Document", help="collection name")


def _ensemble_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"members": [], "combine": "concat"}
    if args.ensemble:
        loaded = yaml.safe_load(args.ensemble.read_text())
        if not isinstance(loaded, dict) or "members" not in loaded:
            raise SystemExit(f"{args.ensemble}: expected a mapping with a 'members' list.")
        settings.update(loaded)
    if args.model:
        weights = args.weight or [1.0] * len(args.model)
        if len(weights) != len(args.model):
            raise SystemExit(f"Give one --weight per --model ({len(args.model)} models, {len(weights)} weights).")
        settings["members"] = [{"model": m, "weight": w} for m, w in zip(args.model, weights)]
    if not settings["members"]:
        settings["members"] = [{"model": _default_model()}]
    if args.combine:
        settings["combine"] = args.combine
    cache_dir = None if str(args.cache_dir).lower() == "none" else str(Path(args.cache_dir).expanduser())
    settings["cache_dir"] = cache_dir
    return settings


def _open_store(args: argparse.Namespace, embedding_dim: int, recreate: bool = False):
    from haystack.utils import Secret

    from haystack_hardneg.store.qdrant import open_document_store

    if args.url:
        key = Secret.from_env_var(args.api_key_env, strict=False)
        return open_document_store(url=args.url, api_key=key, index=args.index, embedding_dim=embedding_dim,
                                   recreate_index=recreate)
    return open_document_store(path=args.store, index=args.index, embedding_dim=embedding_dim, recreate_index=recreate)


def _embedder_dimension(embedder) -> int:
    embedder.warm_up()
    return embedder.encoder.dimension


def cmd_index(args: argparse.Namespace) -> int:
    from haystack_hardneg.embed.components import EnsembleDocumentEmbedder
    from haystack_hardneg.ingest.components import CorpusConverter, DocumentChunker
    from haystack_hardneg.pipelines import build_indexing_pipeline, load_pipeline

    started = time.perf_counter()
    if args.pipeline:
        pipeline = load_pipeline(args.pipeline)
    else:
        settings = _ensemble_settings(args)
        embedder = EnsembleDocumentEmbedder(
            members=settings["members"],
            combine=settings["combine"],
            cache_dir=settings["cache_dir"],
            meta_fields_to_embed=args.meta_field or None,
            embedding_separator=args.separator,
        )
        chunker = DocumentChunker(
            split_by=args.split_by, split_length=args.split_length, split_overlap=args.split_overlap,
            tokenizer=settings["members"][0]["model"] if args.split_by == "token" else None,
        )
        store = _open_store(args, _embedder_dimension(embedder), recreate=args.recreate)
        pipeline = build_indexing_pipeline(embedder, store, converter=CorpusConverter(), chunker=chunker)
    result = pipeline.run({"converter": {"sources": args.sources}}, include_outputs_from={"converter", "chunker", "embedder"})
    failures = result["converter"]["failures"]
    summary = {
        "sources": len(args.sources),
        "failed_sources": failures,
        "documents": len(result["converter"]["documents"]),
        "chunks": len(result["chunker"]["documents"]),
        "skipped_empty": result["chunker"]["skipped"] + result["embedder"]["skipped"],
        "written": result["writer"]["documents_written"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 1 if failures and len(failures) == len(args.sources) else 0


def _query_pipeline(args: argparse.Namespace):
    from haystack_hardneg.embed.components import EnsembleTextEmbedder
    from haystack_hardneg.pipelines import build_query_pipeline, load_pipeline

    if args.pipeline:
        return load_pipeline(args.pipeline)
    settings = _ensemble_settings(args)
    embedder = EnsembleTextEmbedder(members=settings["members"], combine=settings["combine"], cache_dir=settings["cache_dir"])
    store = _open_store(args, _embedder_dimension(embedder))
    if args.ranker:
        from haystack_hardneg.rank.ranker import CrossEncoderRanker

        ranker = CrossEncoderRanker(model=args.ranker, top_k=args.top_k, fusion_alpha=args.fusion_alpha,
                                    meta_fields_to_embed=["title"])
        return build_query_pipeline(embedder, store, top_k=args.retrieve_k, ranker=ranker)
    return build_query_pipeline(embedder, store, top_k=args.top_k)


def cmd_query(args: argparse.Namespace) -> int:
    from haystack_hardneg.pipelines import check_query_embedder_matches_store, query_documents

    pipeline = _query_pipeline(args)
    check_query_embedder_matches_store(pipeline)
    for text in args.text:
        documents = query_documents(pipeline, text)
        print(f"\n# {text}")
        for rank, doc in enumerate(documents[: args.top_k], start=1):
            title = doc.meta.get("title") or doc.meta.get("source") or ""
            snippet = " ".join((doc.content or "").split())[:160]
            print(f"{rank:>3}. {doc.score:.4f}  {doc.id}  {title[:60]}\n       {snippet}")
    return 0


def cmd_mine(args: argparse.Namespace) -> int:
    """Mine negatives for a BEIR split with one or more strategies; one folder of files per strategy."""
    from dataclasses import replace

    from haystack_hardneg.embed.components import EnsembleTextEmbedder
    from haystack_hardneg.ingest.beir import load_beir
    from haystack_hardneg.mine.component import ClusterNegativeMiner, skipped_when_loading
    from haystack_hardneg.mine.config import LEXICAL_FUSION_STRATEGIES, STRATEGIES, check_fits_ensemble
    from haystack_hardneg.mine.negatives import mine_negatives
    from haystack_hardneg.mine.report import format_report, mining_report
    from haystack_hardneg.mine.candidates import first_stage_candidates, write_candidates
    from haystack_hardneg.mine.triplets import write_triplets

    split = load_beir(args.data, args.split, on_missing="skip" if args.skip_missing else "error")
    settings = _ensemble_settings(args)
    embedder = EnsembleTextEmbedder(members=settings["members"], combine=settings["combine"],
                                    cache_dir=settings["cache_dir"], progress_bar=True)
    store = _open_store(args, _embedder_dimension(embedder)) if args.from_store else None
    strategies = list(STRATEGIES) if "all" in args.strategy else args.strategy
    if args.lexical_weight is not None and not set(strategies) & set(LEXICAL_FUSION_STRATEGIES):
        raise ValueError(f"--lexical-weight changes only {LEXICAL_FUSION_STRATEGIES}; none of them is mined here.")
    miner = ClusterNegativeMiner(
        text_embedder=embedder, document_store=store, strategy=strategies[0], num_negatives=args.num_negatives,
        rank_window=tuple(args.rank_window), sampling=args.sampling, member=args.member, n_clusters=args.n_clusters,
        cluster_algorithm=args.cluster_algorithm,
        guard_ratio=None if str(args.guard_ratio).lower() == "none" else float(args.guard_ratio),
        guard_member_agreement=not args.no_member_agreement, seed=args.seed,
        meta_fields_to_embed=args.meta_field or ["title"], embedding_separator=args.separator,
        on_missing="skip" if args.skip_missing else "error",
    )
    # One config per strategy, checked before any embedding; --lexical-weight changes the ensemble strategies only.
    configs = {s: replace(miner.config, strategy=s,
                          lexical_weight=args.lexical_weight if s in LEXICAL_FUSION_STRATEGIES else None)
               for s in strategies}
    for config in configs.values():
        check_fits_ensemble(config, len(embedder.members), embedder.combine)
    miner.warm_up()
    data, stats = miner.mining_data(split.queries, split.qrels, None if args.from_store else split.corpus)
    # load_beir already validated the split; count what it and the miner's own validation left out.
    skipped = skipped_when_loading(stats)
    skipped["queries_without_positives"] += len(split.stats.queries_without_positives)
    query_texts, doc_texts = dict(zip(data.query_ids, data.query_texts)), dict(zip(data.doc_ids, data.doc_texts))
    out = Path(args.out)
    if args.candidates_k:
        write_candidates(out / "candidates.jsonl", first_stage_candidates(data, args.candidates_k))
    reports = {}
    for strategy in strategies:
        started = time.perf_counter()
        result = mine_negatives(data, configs[strategy])
        report = mining_report(data, result, seconds=time.perf_counter() - started, skipped_when_loading=skipped)
        write_triplets(out / strategy, result, query_texts, doc_texts, file_format=args.format)
        atomic_write_text(out / strategy / "report.json", json.dumps(report, indent=2))
        reports[strategy] = report
        print(format_report(report), flush=True)
    lines = ["| strategy | pairs | rank in ensemble (mean) | score gap to positive (mean) | suspected positives | seconds |",
             "|---|---|---|---|---|---|"]
    for strategy, r in reports.items():
        rank = r["negative_rank_in_ensemble"]["mean"] if r["negative_rank_in_ensemble"] else float("nan")
        gap = r["score_gap_to_positive"]["mean"] if r["score_gap_to_positive"] else float("nan")
        lines.append(f"| {strategy} | {r['pairs']} | {rank:.1f} | {gap:.3f} | {r['suspected_positives']} | {r['seconds']} |")
    atomic_write_text(out / "mining_report.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "mining_report.json", json.dumps(reports, indent=2))
    print("\n" + "\n".join(lines) + f"\n\nWritten to {out}/")
    return 0


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


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune a cross-encoder on a triplet file."""
    from haystack_hardneg.train.component import TripletTrainer

    trainer = TripletTrainer(
        base_model=args.base_model, output_dir=args.out, resume=args.resume, head=args.head, loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size, encoder_lr=args.encoder_lr,
        head_lr=None if str(args.head_lr).lower() == "none" else float(args.head_lr), margin=args.margin,
        validation_fraction=args.validation_fraction, eval_steps=args.eval_steps, max_length=args.max_length,
        precision=args.precision, seed=args.seed, strategy=args.strategy or Path(args.triplets).parent.name,
        validation_candidates=_candidates_path(args),
        data_description=f"triplets from {args.triplets}",
    )
    result = trainer.run(triplets=args.triplets)
    report = result["report"]
    print(json.dumps({"model": result["model_path"], "steps": report["steps"], "validation": report["validation"],
                      "validation_on": report["validation_on"], "best_checkpoint": report["best_checkpoint"]}, indent=2))
    if report.get("fusion"):
        fusion = report["fusion"]
        print(f"Validation nDCG@10: first stage {fusion['first_stage']['ndcg@10']:.4f}, re-ranker alone "
              f"{fusion['reranker_alone']['ndcg@10']:.4f}, fused at alpha {fusion['best_alpha']} "
              f"{fusion['best']['ndcg@10']:.4f} (stored with the model for fusion_alpha='auto').")
    print(f"Training curves: {Path(args.out) / 'training_curves.png'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Index the shipped SciFact slice into an on-disk local Qdrant store and evaluate retrieval."""
    from haystack_hardneg.embed.components import EnsembleDocumentEmbedder, EnsembleTextEmbedder
    from haystack_hardneg.evaluate.metrics import evaluate_run
    from haystack_hardneg.ingest.beir import load_beir
    from haystack_hardneg.pipelines import build_indexing_pipeline, build_query_pipeline, run_queries
    from haystack_hardneg.store.qdrant import open_document_store

    data = Path(args.data)
    split = load_beir(data, "test")
    members = [{"model": m} for m in (args.model or [_default_model()])]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = str(out / "embedding-cache")
    print(f"Indexing {len(split.corpus)} documents of {data} with {[m['model'] for m in members]} ...")
    started = time.perf_counter()
    doc_embedder = EnsembleDocumentEmbedder(members=members, cache_dir=cache_dir, meta_fields_to_embed=["title"],
                                            embedding_separator=" ")
    dim = _embedder_dimension(doc_embedder)
    store = open_document_store(path=str(out / "qdrant"), index="scifact-mini", embedding_dim=dim, recreate_index=True,
                                progress_bar=False)
    indexing = build_indexing_pipeline(doc_embedder, store)
    indexed = indexing.run({"converter": {"sources": [str(data)]}})
    index_seconds = time.perf_counter() - started
    store.close()
    store = open_document_store(path=str(out / "qdrant"), index="scifact-mini", embedding_dim=dim, progress_bar=False)
    text_embedder = EnsembleTextEmbedder(members=members, cache_dir=cache_dir)
    query_pipeline = build_query_pipeline(text_embedder, store, top_k=100)
    text_embedder.warm_up()
    started = time.perf_counter()
    run = run_queries(query_pipeline, split.queries)
    query_seconds = time.perf_counter() - started
    metrics = evaluate_run(split.qrels, run)
    store.close()
    print(f"\nIndexed {indexed['writer']['documents_written']} chunks in {index_seconds:.1f} s; "
          f"{len(split.queries)} queries in {query_seconds:.1f} s.")
    print("\n| metric | value |\n|---|---|")
    for name, value in metrics.items():
        print(f"| {name} | {value:.4f} |")
    atomic_write_text(out / "demo-results.json", json.dumps({"metrics": metrics, "members": members}, indent=2))
    print(f"\nResults in {out / 'demo-results.json'}")
    return 0


QUICK_EXPERIMENT = Path(__file__).resolve().parents[2] / "examples" / "experiment_quick.yml"


def _own_numba_cache(folder: Path) -> None:
    """ranx compiles its metrics with numba, whose on-disk cache (beside the installed package by default) is not
    safe for processes writing it at once: one full run recorded wrong metrics for a stage that ran while the tests
    did. A run's cache goes in the folder it writes, which it holds alone; NUMBA_CACHE_DIR, when set, wins."""
    import os
    import sys

    if "NUMBA_CACHE_DIR" not in os.environ and "numba" not in sys.modules:
        os.environ["NUMBA_CACHE_DIR"] = str((folder / ".numba-cache").resolve())


def cmd_experiment(args: argparse.Namespace) -> int:
    """Index, first stage, mining with every strategy, one re-ranker each, re-ranking, evaluation; cached."""
    from haystack_hardneg.experiment.config import ExperimentConfig
    from haystack_hardneg.experiment.runner import Experiment

    source = Path(args.config) if args.config else QUICK_EXPERIMENT
    config = ExperimentConfig.from_yaml(source, out=args.out, seed=args.seed, strategies=args.strategies)
    _own_numba_cache(Path(args.interim_report) if args.interim_report else Path(config.resolved().out))
    if args.interim_report:
        from haystack_hardneg.experiment.runner import interim_report

        results = interim_report(config, args.interim_report)
        print((Path(args.interim_report) / "results.md").read_text(encoding="utf-8"))
        print(f"Strategies finished so far: {results['finished_strategies']}")
        if results["stale_strategies"]:
            print(f"Left out, run with other settings than this config's: {results['stale_strategies']}")
        return 0
    if args.export_state:
        from haystack_hardneg.experiment.portable import export_state

        summary = export_state(config, args.export_state)
        print(f"Exported {len(summary['stages'])} stages ({summary['bytes'] / 1e6:.1f} MB) into {args.export_state}: "
              f"{', '.join(summary['stages'])}")
        return 0
    if args.import_state:
        from haystack_hardneg.experiment.portable import import_state

        summary = import_state(config, args.import_state)
        for what, names in summary.items():
            print(f"{what.replace('_', ' ').capitalize()}: {', '.join(names) or 'none'}")
    print(f"Experiment {source} -> {config.resolved().out}")
    experiment = Experiment(config)
    results = experiment.run()
    out = experiment.out
    print("\n" + (out / "results.md").read_text(encoding="utf-8"))
    print(f"Stages run: {results['stages_ran'] or 'none'}; reused from cache: {results['stages_reused'] or 'none'}")
    print(f"Wall time: {results['wall_seconds_this_run']:.0f} s. Results: {out / 'results.json'}, "
          f"{out / 'results.md'}; charts: {out / 'chart_ndcg.png'}, {out / 'chart_long_short.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haystack-hardneg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index URLs, HTML files and JSONL/BEIR corpora into Qdrant")
    index.add_argument("sources", nargs="+", help="URLs, HTML files, JSONL files or BEIR folders")
    index.add_argument("--pipeline", type=Path, help="a YAML indexing pipeline (instead of the options below)")
    _add_ensemble_arguments(index)
    _add_store_arguments(index)
    index.add_argument("--recreate", action="store_true", help="drop the collection first")
    index.add_argument("--split-by", choices=["word", "sentence", "token"], default="word")
    index.add_argument("--split-length", type=int, default=200)
    index.add_argument("--split-overlap", type=int, default=20)
    index.add_argument("--meta-field", action="append", help="meta field embedded before the text (e.g. title)")
    index.add_argument("--separator", default="\n", help="between embedded meta fields and the text")
    index.set_defaults(func=cmd_index)

    query = commands.add_parser("query", help="retrieve documents for one or more queries")
    query.add_argument("text", nargs="+", help="the query text(s)")
    query.add_argument("--pipeline", type=Path, help="a YAML query pipeline (instead of the options below)")
    query.add_argument("--top-k", type=int, default=5)
    query.add_argument("--ranker", help="a cross-encoder folder (from `train`) to re-rank the retrieved documents")
    query.add_argument("--retrieve-k", type=int, default=50, help="documents retrieved for the ranker")
    query.add_argument("--fusion-alpha", type=float, default=None, help="ranker weight against the retriever score")
    _add_ensemble_arguments(query)
    _add_store_arguments(query)
    query.set_defaults(func=cmd_query)

    mine = commands.add_parser("mine", help="mine hard negatives for a BEIR split (one or more strategies)")
    mine.add_argument("--data", type=Path, required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    mine.add_argument("--split", default="train")
    mine.add_argument("--strategy", action="append", choices=["all", "ensemble_cluster", "ensemble", "dense", "bm25",
                                                            "random"], help="repeat for several (default all)")
    mine.add_argument("--num-negatives", type=int, default=5)
    mine.add_argument("--rank-window", type=int, nargs=2, default=[0, 100], metavar=("LO", "HI"))
    mine.add_argument("--sampling", choices=["top", "random"], default="top")
    mine.add_argument("--member", type=int, default=0, help="member used by the dense strategy")
    mine.add_argument("--n-clusters", type=int)
    mine.add_argument("--cluster-algorithm", default="auto",
                      choices=["auto", "kmeans", "minibatch_kmeans", "gmm", "agglomerative"])
    mine.add_argument("--guard-ratio", default="0.95", help="hold back candidates above this x positive score, or none")
    mine.add_argument("--no-member-agreement", action="store_true", help="turn off the all-members-above rule")
    mine.add_argument("--lexical-weight", type=float, default=None,
                      help="ensemble strategies: rank candidates by the ensemble fused with BM25 at this weight (0..1)")
    mine.add_argument("--seed", type=int, default=0)
    mine.add_argument("--from-store", action="store_true", help="read document vectors from the Qdrant store")
    mine.add_argument("--skip-missing", action="store_true", help="drop and count judgements of unknown ids")
    mine.add_argument("--meta-field", action="append", help="meta fields before the text (default: title)")
    mine.add_argument("--separator", default=" ")
    mine.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    mine.add_argument("--candidates-k", type=int, default=30,
                      help="write each query's top-k ensemble candidates to OUT/candidates.jsonl (validation); 0: off")
    mine.add_argument("--out", default="runs/mine")
    _add_ensemble_arguments(mine)
    _add_store_arguments(mine)
    mine.set_defaults(func=cmd_mine, strategy=None)

    train = commands.add_parser("train", help="fine-tune a cross-encoder on mined triplets")
    train.add_argument("--triplets", required=True, help="triplets.jsonl or .parquet from `mine`")
    train.add_argument("--base-model", default=None, help="re-ranker or encoder (default: local all-MiniLM-L6-v2)")
    train.add_argument("--out", default="runs/train")
    train.add_argument("--head", choices=HEADS, default="auto",
                       help="new scoring head of an encoder base (auto: the base's own pooling, else mean); "
                            "a re-ranker base keeps its own")
    train.add_argument("--loss", choices=["triplet", "listwise", "bce"], default="triplet")
    train.add_argument("--epochs", type=float, default=3.0)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--encoder-lr", type=float, default=5e-5)
    train.add_argument("--head-lr", default="2e-3", help="learning rate of a new scoring head, or none")
    train.add_argument("--margin", type=float, default=1.0)
    train.add_argument("--validation-fraction", type=float, default=0.1)
    train.add_argument("--eval-steps", type=int, default=None)
    train.add_argument("--max-length", type=int, default=256)
    train.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                       help="bf16: mixed precision, faster on CPUs with bfloat16 instructions and on recent GPUs")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--strategy", help="negative strategy of the triplets (default: their folder name)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.add_argument("--candidates", default="auto",
                       help="first-stage candidates to validate on: a candidates.jsonl, auto (beside the triplets) "
                            "or none (mined negatives)")
    train.set_defaults(func=cmd_train)

    experiment = commands.add_parser(
        "experiment", help="every negative strategy end to end, with significance, report and charts")
    experiment.add_argument("config", nargs="?",
                            help=f"experiment YAML (default: the quick mode, {QUICK_EXPERIMENT.name})")
    experiment.add_argument("--out", help="run folder (overrides the config's out)")
    experiment.add_argument("--seed", type=int,
                            help="overrides the config's seed (mining, training, validation split): repeat a run "
                                 "with another seed into another --out to see how much of a difference is noise")
    experiment.add_argument("--strategies", nargs="+", metavar="NAME",
                            help="overrides the config's strategies (built-in names or the config's variants)")
    experiment.add_argument("--interim-report", metavar="DIR",
                            help="only write the report of the strategies finished so far into DIR (works while "
                                 "the experiment runs; strategies run with other settings than the config's are "
                                 "left out and named)")
    experiment.add_argument("--export-state", metavar="DIR",
                            help="only write the run folder's finished stages, without their bulk (store, BM25 "
                                 "index, re-rankers, texts the data set holds), into DIR: a few MB to carry to "
                                 "another machine (works while the experiment runs)")
    experiment.add_argument("--import-state", metavar="DIR",
                            help="first put the stages exported into DIR that match this config into the run "
                                 "folder (each file checked against the original's hash), then run the rest")
    experiment.set_defaults(func=cmd_experiment)

    demo = commands.add_parser("demo", help="index the shipped SciFact slice and evaluate retrieval")
    demo.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "examples" / "data" / "scifact-mini"))
    demo.add_argument("--model", action="append", help="member model(s); default all-MiniLM-L6-v2")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "mine" and not args.strategy:
        args.strategy = ["all"]
    if getattr(args, "command", None) == "train" and not args.base_model:
        args.base_model = _default_model()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\nInterrupted: everything embedded so far is in the cache; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

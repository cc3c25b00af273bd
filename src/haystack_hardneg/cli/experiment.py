"""``experiment`` and ``demo``: every negative strategy end to end, with significance, report and charts.

``demo`` is the experiment's quick mode on the SciFact slice shipped in the package (``haystack_hardneg/demo``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from haystack_hardneg.defaults import default_model
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.interim import interim_report
from haystack_hardneg.experiment.plan import format_plan
from haystack_hardneg.experiment.portable import export_state, import_state
from haystack_hardneg.experiment.runner import Experiment
from haystack_hardneg.extras import EXPERIMENT_MODULES, require_all

DEMO_EXPERIMENT = Path(__file__).resolve().parents[1] / "demo" / "experiment_quick.yml"


def add_experiment_parser(commands) -> None:
    experiment = commands.add_parser(
        "experiment", help="every negative strategy end to end, with significance, report and charts")
    experiment.add_argument("config", help="experiment YAML (`demo` runs the shipped quick one)")
    experiment.add_argument("--out", help="run folder (overrides the config's out)")
    experiment.add_argument("--seed", type=int,
                            help="overrides the config's seed (mining; training and validation split too unless "
                                 "training_seed is set): repeat a run "
                                 "with another seed into another --out to see how much of a difference is noise")
    experiment.add_argument("--training-seed", type=int,
                            help="overrides the config's training_seed: seeds the re-rankers' training alone "
                                 "(validation split, row order, new head) and keeps the mined triplets, so that "
                                 "repeats differ only by the training's noise")
    experiment.add_argument("--strategies", nargs="+", metavar="NAME",
                            help="overrides the config's strategies (built-in names or the config's variants)")
    experiment.add_argument("--plan", action="store_true",
                            help="only print the plan: counts per stage and strategy, and each stage's estimated "
                                 "time from a short warm-up of the models on this machine")
    experiment.add_argument("--no-report", action="store_true",
                            help="run the stages only, without the report (e.g. on a training machine whose state "
                                 "is exported with --export-state and reported elsewhere)")
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


def _own_numba_cache(folder: Path) -> None:
    """ranx compiles its metrics with numba, whose on-disk cache (beside the installed package by default) is not
    safe for processes writing it at once. A run's cache goes in the folder it writes, which it holds alone;
    NUMBA_CACHE_DIR, when set, wins."""
    if "NUMBA_CACHE_DIR" not in os.environ and "numba" not in sys.modules:
        os.environ["NUMBA_CACHE_DIR"] = str((folder / ".numba-cache").resolve())


def _interim_report(config, dest: str) -> int:
    results = interim_report(config, dest)
    print((Path(dest) / "results.md").read_text(encoding="utf-8"))
    print(f"Strategies finished so far: {results['finished_strategies']}")
    if results["stale_strategies"]:
        print(f"Left out, run with other settings than this config's: {results['stale_strategies']}")
    return 0


def _export_state(config, dest: str) -> int:
    summary = export_state(config, dest)
    print(f"Exported {len(summary['stages'])} stages ({summary['bytes'] / 1e6:.1f} MB) into {dest}: "
          f"{', '.join(summary['stages'])}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """Index, first stage, mining with every strategy, one re-ranker each, re-ranking, evaluation; cached."""
    source = Path(args.config)
    config = ExperimentConfig.from_yaml(source, out=args.out, seed=args.seed, strategies=args.strategies,
                                        training_seed=args.training_seed)
    if not args.plan:  # a plan writes nothing into the run folder, not even numba's cache
        _own_numba_cache(Path(args.interim_report) if args.interim_report else Path(config.resolved().out))
    if args.interim_report:
        return _interim_report(config, args.interim_report)
    if args.export_state:
        return _export_state(config, args.export_state)
    if args.import_state:
        for what, names in import_state(config, args.import_state).items():
            print(f"{what.replace('_', ' ').capitalize()}: {', '.join(names) or 'none'}")
    return _run(config, f"Experiment {source}", plan_only=args.plan, report=not args.no_report)


def _run(config: ExperimentConfig, title: str, *, plan_only: bool, report: bool = True) -> int:
    require_all(EXPERIMENT_MODULES, "The experiment")
    print(f"{title} -> {config.resolved().out}")
    experiment = Experiment(config, plan_only=plan_only)
    if plan_only:
        try:
            print(format_plan(experiment.plan()))
        finally:
            experiment.close()
        return 0
    results = experiment.run(report=report)
    out = experiment.out
    if not report:
        print(f"Stages run: {results['stages_ran'] or 'none'}; reused: {results['stages_reused'] or 'none'}; "
              f"no report (--no-report). Wall time: {results['wall_seconds_this_run']:.0f} s.")
        return 0
    print("\n" + (out / "results.md").read_text(encoding="utf-8"))
    print(f"Stages run: {results['stages_ran'] or 'none'}; reused from cache: {results['stages_reused'] or 'none'}")
    print(f"Wall time: {results['wall_seconds_this_run']:.0f} s. Results: {out / 'results.json'}, "
          f"{out / 'results.md'}; charts: {out / 'chart_ndcg.png'}, {out / 'chart_long_short.png'}")
    return 0


def add_demo_parser(commands) -> None:
    demo = commands.add_parser(
        "demo", help="the experiment's quick mode on the SciFact slice shipped in the package (minutes on a CPU)")
    demo.add_argument("--model", help="embedding model and re-ranker base (a hub id or a local folder; default: "
                                      "all-MiniLM-L6-v2, from $HARDNEG_MODELS when it is there)")
    demo.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    demo.add_argument("--plan", action="store_true", help="only print the plan")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """The quick experiment: every strategy, one small re-ranker each, on 600 SciFact documents."""
    model = args.model or default_model()
    config = ExperimentConfig.from_yaml(DEMO_EXPERIMENT, out=args.out)
    config = dataclasses.replace(config, members=[{"model": model}],
                                 training={**config.training, "base_model": model})
    if not args.plan:
        _own_numba_cache(Path(config.resolved().out))
    return _run(config, f"Demo: {len(config.strategies)} negative strategies with {model}", plan_only=args.plan)

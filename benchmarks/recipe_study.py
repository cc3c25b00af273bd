"""Which training recipe makes the best re-ranker, chosen on validation, then the paper's comparison with seeds.

The study (``benchmarks/recipe_study.yml``) names data sets (an experiment config and its exported state each),
training recipes (overrides of the config's ``training`` section) and seeds. Mining is not redone: every run
starts from the data set's exported first stage and triplets, and the seed is the training's (``training_seed``),
so runs differ only where the recipe or the training's noise makes them.

1. Selection: every recipe trains one re-ranker per data set on ``select_strategy``'s triplets (seed 0). The
   winner is the recipe with the best validation nDCG@10 of the re-ranker alone, averaged over the data sets
   (test queries play no part).
2. Comparison: the winner trains every strategy of each config with each seed; the baseline recipe trains
   ``select_strategy`` with each seed too, so that winner and baseline are compared over seeds.

``run`` trains (a GPU pays off: several runs share it, ``--workers`` at a time) and writes each run's trainings
as an exported state into ``--export`` (a tar.gz, rewritten after each run, so that a run stopped at
``--deadline-minutes`` keeps what finished). ``report`` rebuilds every run's report from those states on any
machine, without training, and sums them up (``--into``):

    python benchmarks/recipe_study.py run benchmarks/recipe_study.yml --out runs/recipe-study \\
        --export runs/recipe-study.tar.gz
    python benchmarks/recipe_study.py report benchmarks/recipe_study.yml --out runs/recipe-study-report \\
        --states runs/recipe-study.tar.gz --into benchmarks/recipe-study
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import mean

import yaml

from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.environment import machine
from haystack_hardneg.experiment.portable import export_state, import_state
from haystack_hardneg.experiment.runner import Experiment
from haystack_hardneg.experiment.table import expected_keys
from haystack_hardneg.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    data_set: str
    recipe: str
    seed: int
    strategies: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.data_set}/{self.recipe}/seed{self.seed}"


class Study:
    def __init__(self, path: Path, out: Path):
        self.spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.out = out
        self.data_sets = self.spec["data_sets"]
        self.recipes: dict[str, dict] = self.spec["recipes"]
        # Probes: recipes tried beside the chosen one (e.g. longer training), run with --runs, never selected.
        self.probes: dict[str, dict] = self.spec.get("probes", {})
        if set(self.probes) & set(self.recipes):
            raise SystemExit(f"{path}: probes {sorted(set(self.probes) & set(self.recipes))} are named like recipes; "
                             "rename them (a probe must not change what the selection trains).")
        self.baseline, self.seeds = self.spec["baseline"], list(self.spec["seeds"])
        self.select_strategy = self.spec["select_strategy"]
        self._splits: dict[str, tuple] = {}

    def splits(self, data_set: str) -> tuple:
        """The data set's test and training splits, loaded once."""
        if data_set not in self._splits:
            splits = self.config(data_set).load_splits()
            self._splits[data_set] = (splits["test"], splits["train"])
        return self._splits[data_set]

    def config(self, data_set: str, recipe: str | None = None, *, seed: int = 0,
               strategies: tuple[str, ...] | None = None) -> ExperimentConfig:
        entry = self.data_sets[data_set]
        config = ExperimentConfig.from_yaml(ROOT / entry["config"])
        overrides = {**self.recipes, **self.probes}[recipe] if recipe else {}
        training = {**config.training, **self.spec.get("training", {}), **overrides}
        folder = self.out / data_set / (recipe or "base") / (f"seed{seed}" if recipe else "")
        return replace(config, out=str(folder), training=training, training_seed=seed,
                       strategies=list(strategies or config.strategies))

    def write_config(self, run: Run) -> Path:
        """The run's config as a file, for the CLI (data made absolute: the file lives in the run folder)."""
        config = self.config(run.data_set, run.recipe, seed=run.seed, strategies=run.strategies)
        source = yaml.safe_load((ROOT / self.data_sets[run.data_set]["config"]).read_text(encoding="utf-8"))
        source.update(data=config.data, training=config.training, strategies=list(run.strategies),
                      training_seed=run.seed, out=config.out)
        path = Path(config.out + ".yml")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, yaml.safe_dump(source, sort_keys=False))
        return path


def prepare_base(study: Study, data_set: str, state: Path) -> None:
    """The data set's exported stages, imported once; each run folder starts as a copy of it."""
    summary = import_state(study.config(data_set), state)
    print(f"{data_set}: imported {len(summary['imported'])} stages, {len(summary['already_there'])} there", flush=True)
    Experiment(study.config(data_set), progress_bar=False).prepare_upstream()


def start_folder(study: Study, run: Run) -> None:
    folder = Path(study.config(run.data_set, run.recipe, seed=run.seed).out)
    if folder.is_dir():
        return
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    # Hard links: the experiment replaces files (atomic writes), never changes one in place.
    shutil.copytree(Path(study.config(run.data_set).out), partial, ignore=shutil.ignore_patterns(".lock"),
                    copy_function=os.link)
    partial.rename(folder)


def run_experiment(study: Study, run: Run, log: Path, stop_at: float | None, *, report: bool = True) -> int | str:
    """The run's experiment in a process of its own (its stages, and its report unless ``report`` is false);
    stopped at ``stop_at`` (it resumes where it was)."""
    start_folder(study, run)
    config_path = study.write_config(run)
    command = [sys.executable, "-m", "haystack_hardneg.cli", "experiment", str(config_path),
               "--strategies", *run.strategies, *([] if report else ["--no-report"])]
    timeout = None if stop_at is None else max(1.0, stop_at - time.monotonic())
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        try:
            return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return "stopped (--stop-minutes)"


def finished_stages(study: Study, run: Run) -> set[str]:
    """The run's trainings and re-rankings finished under its own keys (its folder started as a copy of the base,
    whose records of other settings it keeps until it replaces them)."""
    config = study.config(run.data_set, run.recipe, seed=run.seed, strategies=run.strategies)
    stages = Path(config.out) / "stages.json"
    if not stages.is_file():
        return set()
    records = json.loads(stages.read_text(encoding="utf-8"))
    expected = expected_keys(config.resolved(), *study.splits(run.data_set))
    return {f"{kind}/{s}" for s in run.strategies for kind in ("train", "rerank")
            if records.get(f"{kind}/{s}", {}).get("key") == expected[f"{kind}/{s}"]}


def export(study: Study, runs: list[Run], dest: Path, tar_path: Path | None) -> None:
    """Each run's trainings and re-ranking scores as an exported state (the shared upstream stages stay behind),
    into ``dest`` (beside the runs exported before) and all of ``dest`` into the tar.gz."""
    for run in runs:
        # Every strategy the folder finished, not only those this run was given: the export replaces the run's
        # earlier one, which may hold strategies resumed from elsewhere (--states) or trained before.
        run = replace(run, strategies=tuple(study.config(run.data_set).strategies))
        stages = finished_stages(study, run)
        if stages:
            export_state(study.config(run.data_set, run.recipe, seed=run.seed, strategies=run.strategies),
                         dest / run.name, only=stages)
    if tar_path is not None:
        partial = tar_path.with_name(tar_path.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(dest, arcname="states")
        partial.replace(tar_path)


def validation_score(study: Study, run: Run) -> float | None:
    """The validation nDCG@10 of the run's select_strategy re-ranker (the trainer's, of the checkpoint it kept),
    where that training finished under the run's own key."""
    strategy = study.select_strategy
    if f"train/{strategy}" not in finished_stages(study, run):
        return None
    path = Path(study.config(run.data_set, run.recipe, seed=run.seed).out) / "train" / strategy / \
        "training_report.json"
    return json.loads(path.read_text(encoding="utf-8"))["validation"]["validation_ndcg@10"]


def select(study: Study) -> dict:
    """The recipe whose seed-0 re-ranker scores best on validation, averaged over the data sets; no winner while
    a recipe lacks a data set (a run that failed or was stopped)."""
    table = {recipe: {ds: validation_score(study, Run(ds, recipe, 0, (study.select_strategy,)))
                      for ds in study.data_sets} for recipe in study.recipes}
    means = {r: mean(v.values()) for r, v in table.items() if None not in v.values()}
    missing = [f"{r}/{ds}" for r, v in table.items() for ds, score in v.items() if score is None]
    return {"rule": f"best mean validation nDCG@10 of the {study.select_strategy} re-ranker alone (seed 0)",
            "validation_ndcg@10": table, "mean": means, "missing": missing,
            "winner": None if missing else max(means, key=means.get)}


def comparison_runs(study: Study, winner: str) -> list[Run]:
    runs = []
    for seed in study.seeds:
        for ds in study.data_sets:
            strategies = tuple(study.config(ds).strategies)
            runs.append(Run(ds, winner, seed, strategies))
            if winner != study.baseline:
                runs.append(Run(ds, study.baseline, seed, (study.select_strategy,)))
    return runs


def parse_run(study: Study, name: str) -> Run:
    """``data_set/recipe/seedN`` (the selection strategy) or ``data_set/recipe/seedN:strategy,strategy``."""
    path, _, strategies = name.partition(":")
    data_set, recipe, seed = path.split("/")
    recipes = [*study.recipes, *study.probes]
    if data_set not in study.data_sets or recipe not in recipes or not seed.startswith("seed"):
        raise SystemExit(f"--runs {name}: expected data_set/recipe/seedN with a data set of {list(study.data_sets)} "
                         f"and a recipe of {recipes}.")
    return Run(data_set, recipe, int(seed[4:]), tuple(strategies.split(",")) if strategies else
               (study.select_strategy,))


class Scheduler:
    """Runs at a time on one machine (``workers``), none started after ``deadline`` and all stopped at ``stop_at``
    (monotonic seconds); each finished run's trainings exported at once."""

    def __init__(self, study: Study, args):
        now = time.monotonic()
        self.study, self.workers, self.export_tar = study, args.workers, args.export
        self.deadline = now + 60 * args.deadline_minutes if args.deadline_minutes else None
        self.stop_at = now + 60 * args.stop_minutes if args.stop_minutes else None
        self.logs, self.states = args.out / "logs", args.out / "states"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _open(self) -> bool:
        return self.deadline is None or time.monotonic() < self.deadline

    def run_all(self, runs: list[Run]) -> None:
        queue, pending = list(runs), {}
        with ThreadPoolExecutor(self.workers) as pool:
            while queue or pending:
                while queue and len(pending) < self.workers and self._open():
                    run = queue.pop(0)
                    log = self.logs / (run.name.replace("/", "_") + ".log")
                    pending[pool.submit(run_experiment, self.study, run, log, self.stop_at, report=False)] = run
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    run = pending.pop(future)
                    print(f"{time.strftime('%H:%M:%S')} {run.name} {run.strategies}: exit {future.result()}",
                          flush=True)
                    export(self.study, [run], self.states, self.export_tar)


def resume_from(study: Study, sources: list[Path], scratch: Path) -> None:
    """Runs exported before (the committed states, or the tar.gz of an earlier run elsewhere) put back into their
    run folders: their finished trainings are kept, not trained again, and exported again with their run."""
    collect_states(sources, scratch / "states")
    for run, state in exported_runs(scratch / "states"):
        if run.data_set in study.data_sets and run.recipe in {**study.recipes, **study.probes}:
            start_folder(study, run)
            config = study.config(run.data_set, run.recipe, seed=run.seed, strategies=run.strategies)
            print(f"{run.name}: resumed {len(import_state(config, state)['imported'])} stages", flush=True)


def cmd_run(args) -> int:
    study = Study(args.study, args.out)
    for ds, entry in study.data_sets.items():
        prepare_base(study, ds, ROOT / entry["state"])  # quick where it is done already
    if args.states:
        resume_from(study, args.states, args.out / "resumed")
    scheduler = Scheduler(study, args)
    if args.runs:  # these runs only, e.g. more seeds on a machine without a GPU
        scheduler.run_all([parse_run(study, name) for name in args.runs])
        return 0
    scheduler.run_all([Run(ds, recipe, 0, (study.select_strategy,))
                       for recipe in study.recipes for ds in study.data_sets])
    selection = select(study)
    atomic_write_text(args.out / "selection.json", json.dumps({**selection, "machine": machine()}, indent=2))
    print(json.dumps(selection, indent=2), flush=True)
    if selection["winner"] is None:
        print(f"No recipe chosen: {selection['missing']} did not finish. Run again to resume.", flush=True)
        return 1
    scheduler.run_all(comparison_runs(study, selection["winner"]))
    return 0


def exported_runs(states: Path) -> list[tuple[Run, Path]]:
    """The runs in an extracted ``states`` folder, each with the strategies whose scores it carries."""
    found = []
    for state in sorted(states.glob("*/*/seed*/state.json")):
        stages = json.loads(state.read_text(encoding="utf-8"))["stages"]
        strategies = tuple(n.split("/", 1)[1] for n in stages if n.startswith("rerank/"))
        folder = state.parent
        if strategies:
            found.append((Run(folder.parents[1].name, folder.parent.name, int(folder.name[4:]), strategies), folder))
    return found


def cmd_prepare(args) -> int:
    study = Study(args.study, args.out)
    for ds, entry in study.data_sets.items():
        prepare_base(study, ds, ROOT / entry["state"])
    return 0


def collect_states(sources: list[Path], states: Path) -> None:
    """The given states (tar.gz files that run wrote, or states folders as committed), and nothing older. A run
    exported by several sources keeps the stages of all (a later source's record of a stage wins)."""
    shutil.rmtree(states, ignore_errors=True)
    states.mkdir(parents=True)
    for i, source in enumerate(sources):
        if source.is_dir():
            unpacked = source
        else:
            scratch = states.parent / f".unpacked-{i}"
            shutil.rmtree(scratch, ignore_errors=True)
            with tarfile.open(source) as archive:
                archive.extractall(scratch, filter="data")
            unpacked = scratch / "states"
        for state in sorted(unpacked.glob("*/*/seed*/state.json")):
            _merge_state(state.parent, states / state.parent.relative_to(unpacked))
        if not source.is_dir():
            shutil.rmtree(unpacked.parent)


def _merge_state(source: Path, target: Path) -> None:
    """``source``'s exported run into ``target``: its files over the target's, its stages beside them."""
    merged = json.loads((target / "state.json").read_text(encoding="utf-8")) if target.is_dir() else None
    shutil.copytree(source, target, dirs_exist_ok=True)
    if merged is not None:
        incoming = json.loads((source / "state.json").read_text(encoding="utf-8"))
        for part in ("stages", "models", "plan_estimates"):
            merged[part] = {**merged.get(part, {}), **incoming.get(part, {})}
        atomic_write_text(target / "state.json", json.dumps(merged, indent=2))


def report_run(study: Study, run: Run, state: Path, log: Path) -> Run | None:
    """The run's report from its exported state, for the strategies the state holds under the run's own keys;
    nothing is trained here. ``None`` when the state holds none or the report failed."""
    config = study.config(run.data_set, run.recipe, seed=run.seed, strategies=run.strategies)
    start_folder(study, run)
    imported = import_state(config, state)["imported"]
    finished = finished_stages(study, run)
    scored = tuple(s for s in run.strategies if {f"train/{s}", f"rerank/{s}"} <= finished)
    if not scored:
        print(f"{run.name}: nothing of its own in the state, left out", flush=True)
        return None
    run = replace(run, strategies=scored)
    results = Path(config.out) / "results.json"
    if imported or not results.is_file() or tuple(json.loads(results.read_text())["rerankers"]) != scored:
        code = run_experiment(study, run, log, None)
        print(f"{run.name} {scored}: report {'written' if code == 0 else f'failed ({code})'}", flush=True)
        if code != 0:
            return None
    return run


def cmd_report(args) -> int:
    study = Study(args.study, args.out)
    states = args.out / "states"
    collect_states(args.states, states)
    for ds, entry in study.data_sets.items():
        prepare_base(study, ds, ROOT / entry["state"])
    runs = [reported for run, state in exported_runs(states)
            if (reported := report_run(study, run, state, args.out / f"{run.name.replace('/', '_')}.log"))]
    from recipe_summary import summarise

    summarise(study, runs, select(study), args.into, states)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(required=True)
    run = commands.add_parser("run", help="train every run of the study")
    run.add_argument("study", type=Path)
    run.add_argument("--out", type=Path, required=True, help="the study's run folders")
    run.add_argument("--export", type=Path, help="a tar.gz of every finished run's exported trainings")
    run.add_argument("--runs", nargs="+", metavar="DS/RECIPE/SEEDN[:STRATEGIES]",
                     help="only these runs, without the selection (e.g. more seeds, on another machine)")
    run.add_argument("--states", type=Path, nargs="+",
                     help="runs exported before (tar.gz or states folders): what they finished is not trained again")
    run.add_argument("--workers", type=int, default=1, help="runs at a time (one GPU holds several)")
    run.add_argument("--deadline-minutes", type=float, help="start no run after this")
    run.add_argument("--stop-minutes", type=float, help="stop the runs still going at this (they resume)")
    run.set_defaults(func=cmd_run)
    prepare = commands.add_parser("prepare", help="only import each data set's state (run does it when needed)")
    prepare.add_argument("study", type=Path)
    prepare.add_argument("--out", type=Path, required=True)
    prepare.set_defaults(func=cmd_prepare)
    report = commands.add_parser("report", help="every run's report from exported states, and the summary")
    report.add_argument("study", type=Path)
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--states", type=Path, nargs="+", required=True,
                        help="tar.gz files written by run, or states folders")
    report.add_argument("--into", type=Path, required=True, help="the summary's folder (JSON, Markdown, chart)")
    report.set_defaults(func=cmd_report)
    args = parser.parse_args()
    raise SystemExit(args.func(args))


if __name__ == "__main__":
    main()

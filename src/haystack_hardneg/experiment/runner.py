"""Runs the experiment's stages (declared in table.py, each cached under its key, stages.py) and writes the
report: metrics, paired tests, short/long subsets, results.json, results.md and charts, always redone.

Each stage's compute calls the job the components and the CLI call too; this module holds what the stages share
(the store, the embedder, the mining data) and decides nothing about order: the table's walk does.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from haystack.utils import Secret

from haystack_hardneg.embed.components import EnsembleTextEmbedder
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.environment import machine, versions
from haystack_hardneg.experiment.folder import RunFolder, strategy_stage
from haystack_hardneg.experiment.keys import MODELS_FILE, data_fingerprint, model_fingerprints
from haystack_hardneg.experiment.plan import estimate, format_plan, make_plan, mined_counts, record_estimates
from haystack_hardneg.experiment.report import write_report
from haystack_hardneg.experiment.stages import ENSEMBLE, StageCache, Walk
from haystack_hardneg.experiment.table import Inputs, stage_table, table_keys
from haystack_hardneg.files import atomic_write_text
from haystack_hardneg.store.qdrant import open_document_store

REPORT_FILES = ("results.json", "results.md", "per_query.json")


class Experiment:
    """Runs (or resumes) an experiment in ``config.out``; ``run()`` returns the results."""

    def __init__(self, config: ExperimentConfig, *, progress_bar: bool = True, plan_only: bool = False):
        """``plan_only``: for ``plan()`` alone; nothing is written (no run folder is made) and no lock is taken."""
        self.config = config.resolved()
        self.out = Path(self.config.out)
        self.progress_bar = progress_bar
        self.folder = RunFolder(self.out)
        self.data_key = data_fingerprint(self.config)
        self.table = stage_table(self.config)
        self.plan_only = plan_only
        self.cache = StageCache(self.out, read_only=plan_only)
        self._store = None
        self._text_embedder = None
        self.mining_data = None  # built by the first mining stage that runs, for all (upstream.py)
        self._splits: dict[str, Any] | None = None
        self._keys: dict[str, str | None] | None = None
        try:
            self._check_models()
        except BaseException:
            self.cache.close()
            raise

    def _check_models(self) -> None:
        """Stages computed with a model folder whose contents have changed since would be reused under the same
        keys: refuse, and leave the run folder as it is."""
        path = self.out / MODELS_FILE
        current = model_fingerprints(self.config)
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        changed = sorted(p for p in current if p in recorded and recorded[p] != current[p])
        members = {m["model"] for m in self.config.members if "model" in m}
        # The members enter every stage (the index); the re-rankers' base only training (an unfinished one too: its
        # checkpoints resume) and re-ranking.
        uses_base = any(name.startswith(("train/", "rerank/")) for name in self.cache.records) or \
            any((self.folder / RunFolder.trainings).glob("*/checkpoints"))
        used = [p for p in changed if (self.cache.records if p in members else uses_base)]
        if used:
            raise ValueError(f"The model folder(s) {used} changed since the stages in {self.out} were computed "
                             f"with them (the cache knows models by path): run into another --out, or delete "
                             f"{self.out} to start over.")
        if not self.plan_only:
            atomic_write_text(path, json.dumps({**recorded, **current}, indent=2))

    # -- shared pieces ---------------------------------------------------------------------------------------
    @property
    def splits(self) -> dict[str, Any]:
        """The test and the training split, loaded once."""
        if self._splits is None:
            self._splits = self.config.load_splits()
        return self._splits

    @property
    def keys(self) -> dict[str, str | None]:
        """Every stage's key, from the table."""
        if self._keys is None:
            self._keys = table_keys(self.table, Inputs(self.config, self.data_key, self.splits))
        return self._keys

    def text_embedder(self):
        if self._text_embedder is None:
            self._text_embedder = EnsembleTextEmbedder(members=self.config.members, combine=self.config.combine,
                                                       cache_dir=self.config.cache_dir)
            self._text_embedder.warm_up()
        return self._text_embedder

    def store(self, *, recreate: bool = False):
        if self._store is not None and not recreate:
            return self._store
        self.close_store()
        store = self.config.store_section
        where = {k: v for k, v in (("url", store.url), ("path", store.path), ("location", store.location)) if v}
        if not where:
            where["path"] = str(self.folder / RunFolder.qdrant)
        if store.api_key_env is not None:
            where["api_key"] = Secret.from_env_var(store.api_key_env)
        self._store = open_document_store(index=store.index, embedding_dim=self.text_embedder().encoder.dimension,
                                          recreate_index=recreate, progress_bar=False, **where, **store.qdrant)
        return self._store

    # -- everything ------------------------------------------------------------------------------------------
    def run(self, *, report: bool = True) -> dict[str, Any]:
        """Every stage left to run, then the report; ``report=False``: the stages only (a training machine whose
        state is exported and reported elsewhere)."""
        if self.plan_only:
            raise RuntimeError("This Experiment was opened with plan_only=True: open another to run it.")
        try:
            return self._run(report)
        finally:
            self.close()

    def _walk(self, *, dry: bool = False) -> Walk:
        return Walk(self.table, self.cache, self.keys, None if dry else lambda stage: stage.compute(self))

    def ensure(self, *names: str) -> dict[str, str | None]:
        """Stages ``names`` there (each reused, or run after what it reads); their keys."""
        walk = self._walk()
        for name in names:
            walk.ensure(name)
        return {name: self.keys[name] for name in names}

    def prepare_upstream(self) -> None:
        """Only the stages the trainings read (the first stage, its fusion, the triplets), e.g. once in a folder
        that several runs then start from as copies."""
        try:
            self.ensure(*dict.fromkeys(upstream for name, stage in self.table.items() if name.startswith("train/")
                                       for upstream in stage.reads))
        finally:
            self.close()

    def plan(self, splits: dict[str, Any] | None = None, *, measured: bool = True) -> dict[str, Any]:
        """The counts and, with ``measured``, each stage's estimated seconds (stages a run would not compute: 0)."""
        if splits is not None:
            self._splits = splits
        walk = self._walk(dry=True)
        for name in walk.wanted():
            walk.ensure(name)
        # A stage with no key has nothing to do in this config (no lexical member, no time budget): neither done
        # nor estimated.
        table = {name: stage for name, stage in self.table.items() if self.keys[name] is not None}
        done = set(table) - set(walk.would_run)
        # Nothing left to run that the models' speed would time (a report rebuilt from an imported state, say): no
        # warm-up of the models.
        timed = any(self.table[name].timed for name in walk.would_run)
        return make_plan(table, self.config, self.splits, done, measured=measured and timed)

    def _replan_after_mining(self, plan: dict[str, Any]) -> None:
        """Training's estimates again from the rows mining wrote (pairs left without negatives are not trained),
        with the warm-up's rates; printed and kept for the report."""
        c, pending = self.config, [s for s in self.config.strategies if f"train/{s}" not in plan["done"]]
        if "rates" not in plan or not pending:
            return
        for strategy in pending:
            plan["counts"]["strategies"][strategy] = mined_counts(
                c, strategy, self.folder / RunFolder.mined(strategy, "triplets.jsonl"))
        estimates = estimate(self.table, c, plan["counts"], plan["rates"], set(plan["done"]))
        wanted = {strategy_stage(kind, s) for s in pending for kind in ("train", "rerank")}
        record_estimates(self.out, {k: v for k, v in estimates.items() if k in wanted})
        if self.progress_bar:
            print("After mining: " + "; ".join(
                f"{s} {plan['counts']['strategies'][s]['steps']} steps, about {estimates[f'train/{s}'] / 60:.0f} min"
                for s in pending), flush=True)

    def _after_ensemble(self, plan: dict[str, Any]) -> None:
        """Once no stage left to run embeds: training's estimates from the mined rows, and the store (local mode
        holds a lock) and the embedding models let go before training."""
        self._replan_after_mining(plan)
        self.close_store()
        self._text_embedder = None

    def _run(self, report: bool = True) -> dict[str, Any]:
        c = self.config
        started = time.perf_counter()
        atomic_write_text(self.out / "config.json", json.dumps(asdict(c), indent=2))
        atomic_write_text(self.out / "environment.json", json.dumps({"versions": versions(), "machine": machine()},
                                                                    indent=2))
        plan = self.plan()
        atomic_write_text(self.out / RunFolder.plan, json.dumps(plan, indent=2))
        record_estimates(self.out, {k: v for k, v in plan.get("estimate_seconds", {}).items()
                                    if k not in plan["done"]})
        if self.progress_bar and "estimate_seconds" in plan:
            print(format_plan(plan), flush=True)
        walk, embedding = self._walk(), True
        # In table order, so that an interrupted run keeps every finished re-ranker and its scores.
        wanted = walk.wanted()
        for position, name in enumerate(wanted):
            if embedding and not any(walk.needs(later, ENSEMBLE) for later in wanted[position:]):
                self._after_ensemble(plan)
                embedding = False
            walk.ensure(name)
        results = write_report(self.out, c, self.splits, self.cache.records) if report else {}
        results["wall_seconds_this_run"] = round(time.perf_counter() - started, 1)
        results["stages_ran"], results["stages_reused"] = self.cache.ran, self.cache.reused
        if report:
            atomic_write_text(self.out / "results.json", json.dumps(results, indent=2))
        elif self.cache.ran:  # an earlier report no longer describes the stages
            for name in REPORT_FILES:
                (self.out / name).unlink(missing_ok=True)
        return results

    def close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        self.close_store()
        self.cache.close()

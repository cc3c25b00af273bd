"""The experiment's stages, each declared once: its name, the stages it reads, its key, the files it writes, what
computes it, what it uses, how it is estimated and how it travels in an exported state.

    index          the corpus through the indexing pipeline into Qdrant (the ensemble's vectors)
    lexical_index  the same documents into a BM25 index, when the config has a lexical member
    first_stage    test and training queries through Haystack's retrievers: each member kind's top retrieve_k
    hybrid         the first stage's candidates: dense alone, or fused with BM25 at a weight chosen on training queries
    mine/<s>       triplets for strategy s from the store's vectors (the mining job)
    budget         with training.max_minutes: the budget as one step count, from this machine's measured step time
    train/<s>      one cross-encoder per strategy, same base, steps and seed; fusion weight chosen on validation
    rerank/<s>     that cross-encoder's scores for the top rerank_k of the test and the held-out training queries

The run (runner.py), the plan, the interim report, the expected keys and the state's export and import all walk
this one table: adding a stage is adding one builder to ``STAGES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from haystack_hardneg.experiment import rerankers, upstream
from haystack_hardneg.experiment.config import ExperimentConfig
from haystack_hardneg.experiment.folder import SPLITS, RunFolder, strategy_stage
from haystack_hardneg.experiment.keys import (
    budget_key,
    data_fingerprint,
    first_stage_key,
    hybrid_key,
    index_key,
    lexical_index_key,
    mine_key,
    rerank_key,
    train_key,
)
from haystack_hardneg.experiment.plan import (
    first_stage_seconds,
    hybrid_seconds,
    index_seconds,
    lexical_index_seconds,
    mine_seconds,
    rerank_seconds,
    train_seconds,
)
from haystack_hardneg.experiment.stages import ENSEMBLE, StageRun


@dataclass(frozen=True)
class Inputs:
    """What keys read besides the upstream keys: the config, the data set's fingerprint and its two splits."""

    config: ExperimentConfig
    data_key: str
    splits: dict[str, Any]

    @property
    def train_split(self):
        return self.splits["train"]


def carry_outputs(folder: RunFolder, record: dict[str, Any]) -> list[str]:
    """An exported state carries the stage's recorded outputs."""
    return list(record["outputs"])


def carry_record(folder: RunFolder, record: dict[str, Any]) -> list[str]:
    """An exported state carries the stage's record alone (its time), not its bulky outputs."""
    return []


def no_estimate(config: ExperimentConfig, counts: dict[str, Any], rates: dict[str, float]) -> float:
    return 0.0


@dataclass(frozen=True)
class Stage:
    """One stage of the experiment.

    :param reads: the stages whose outputs it reads (and whose keys enter its own).
    :param key: the key it is recorded under, from the inputs and its upstream keys (``None``: nothing to do).
    :param outputs: the files it writes, relative to the run folder.
    :param compute: writes the outputs, given the running ``Experiment``.
    :param wanted: ensured on every run (the report or the plan reads it); otherwise run only for a stage that
        reads it and is not done (the store is rebuilt only where mining or the first stage still needs it).
    :param kept: where a later reader needs only these of its outputs (a training's report, not its model): with
        its record's key and these files there, it counts as there until a stage that reads it has to run.
    :param carry: the files an exported state carries (``carry_record``: the record only); ``None``: not carried.
    :param carried_with: carried only when this stage is recorded too (a training goes with its scores).
    :param measures: the first of these left to run compiles the metrics (the plan counts that time).
    :param timed: its estimate reads the warm-up's rates: only a run with such a stage left warms the models up.
    """

    name: str
    reads: tuple[str, ...]
    key: Callable[[Inputs, Mapping[str, str | None]], str | None]
    outputs: Callable[[], list[str]]
    compute: Callable[[StageRun], None]
    wanted: bool = True
    kept: tuple[str, ...] = ()
    uses: frozenset[str] = field(default_factory=frozenset)
    estimate: Callable[[ExperimentConfig, dict[str, Any], dict[str, float]], float] = no_estimate
    carry: Callable[[RunFolder, dict[str, Any]], list[str]] | None = None
    carried_with: str | None = None
    measures: Callable[[ExperimentConfig], bool] = lambda config: False
    timed: bool = False

    @property
    def carried_partly(self) -> bool:
        """Imported without all its outputs: it is there when its record is."""
        return self.carry is carry_record or bool(self.kept)


def _shared_stages(config: ExperimentConfig) -> list[Stage]:
    return [
        Stage("index", (), lambda x, up: index_key(x.config, x.data_key), lambda: [RunFolder.index],
              upstream.index, wanted=False, uses=frozenset({ENSEMBLE}), estimate=index_seconds,
              carry=carry_record, timed=True),
        Stage("lexical_index", (), lambda x, up: lexical_index_key(x.config, x.data_key), lambda: [RunFolder.bm25],
              upstream.lexical_index, wanted=False, estimate=lexical_index_seconds,
              carry=carry_record),
        Stage("first_stage", ("index", "lexical_index"),
              lambda x, up: first_stage_key(x.config, up["index"], up["lexical_index"], x.splits),
              lambda: [RunFolder.lists(split) for split in SPLITS], upstream.first_stage,
              uses=frozenset({ENSEMBLE}), estimate=first_stage_seconds, carry=carry_outputs, timed=True),
        Stage("hybrid", ("first_stage",), lambda x, up: hybrid_key(x.config, up["first_stage"], x.train_split),
              lambda: [*(RunFolder.candidates(split) for split in SPLITS), RunFolder.choice],
              upstream.hybrid, estimate=hybrid_seconds,
              measures=lambda config: config.lexical_section is not None),
    ]


def _carry_mined(strategy: str) -> Callable[[RunFolder, dict[str, Any]], list[str]]:
    def carry(folder: RunFolder, record: dict[str, Any]) -> list[str]:
        names = ("triplets.jsonl", "provenance.jsonl", "report.json", "suspected_positives.jsonl")
        return [RunFolder.mined(strategy, n) for n in names if (folder / RunFolder.mined(strategy, n)).is_file()]
    return carry


# A re-ranker's folder travels without its weights: its small files (reports, curves, the stage key) only.
LARGEST_COPIED_FILE = 5 << 20


def _carry_trained(strategy: str) -> Callable[[RunFolder, dict[str, Any]], list[str]]:
    def carry(folder: RunFolder, record: dict[str, Any]) -> list[str]:
        files = sorted((folder / RunFolder.trained(strategy)).iterdir())
        return [RunFolder.trained(strategy, p.name) for p in files
                if p.is_file() and not p.name.startswith(".") and p.stat().st_size <= LARGEST_COPIED_FILE]
    return carry


def _mining_stages(config: ExperimentConfig) -> list[Stage]:
    return [Stage(strategy_stage("mine", s), ("index",),
                  lambda x, up, s=s: mine_key(x.config, up["index"], s, x.train_split),
                  lambda s=s: [RunFolder.mined(s, "triplets.jsonl"), RunFolder.mined(s, "report.json")],
                  lambda run, s=s: upstream.mine(run, s), uses=frozenset({ENSEMBLE}),
                  estimate=lambda c, n, r, s=s: mine_seconds(c, n, r, s), carry=_carry_mined(s), timed=True)
            for s in config.strategies]


def _training_stages(config: ExperimentConfig) -> list[Stage]:
    # A time budget becomes one step count, measured once, so that every strategy trains as many steps.
    stages = [Stage("budget", (), lambda x, up: budget_key(x.config, x.train_split), lambda: [RunFolder.budget],
                    rerankers.budget, wanted=False, carry=carry_outputs)]
    for s in config.strategies:
        mine, train, rerank = (strategy_stage(kind, s) for kind in ("mine", "train", "rerank"))
        stages += [
            Stage(train, (mine, "hybrid", "budget"),
                  lambda x, up, mine=mine: train_key(x.config, up[mine], up["hybrid"], x.train_split, up["budget"]),
                  lambda s=s: [RunFolder.trained(s, "model"), RunFolder.trained(s, "training_report.json")],
                  lambda run, s=s: rerankers.train(run, s), kept=(RunFolder.trained(s, "training_report.json"),),
                  estimate=lambda c, n, r, s=s: train_seconds(c, n, r, s), carry=_carry_trained(s),
                  carried_with=rerank, measures=lambda config: True, timed=True),
            Stage(rerank, ("hybrid", train), lambda x, up, train=train: rerank_key(x.config, up["hybrid"], up[train]),
                  lambda s=s: [RunFolder.scores(s)], lambda run, s=s: rerankers.rerank(run, s),
                  estimate=lambda c, n, r, s=s: rerank_seconds(c, n, r, s), carry=carry_outputs, timed=True),
        ]
    return stages


# The table, in an order where every stage comes after those it reads: each builder gives its stages for a config.
STAGES: list[Callable[[ExperimentConfig], list[Stage]]] = [_shared_stages, _mining_stages, _training_stages]


def stage_table(config: ExperimentConfig) -> dict[str, Stage]:
    """Every stage of ``config``, by name, in table order."""
    return {stage.name: stage for build in STAGES for stage in build(config)}


def table_keys(table: Mapping[str, Stage], inputs: Inputs) -> dict[str, str | None]:
    """The key every stage is recorded under, in table order (each from its upstream keys)."""
    keys: dict[str, str | None] = {}
    for name, stage in table.items():
        keys[name] = stage.key(inputs, {up: keys[up] for up in stage.reads})
    return keys


def expected_keys(config: ExperimentConfig, test_split, train_split) -> dict[str, str | None]:
    """The key every stage of ``config`` would be recorded under, without running any."""
    inputs = Inputs(config, data_fingerprint(config), {"test": test_split, "train": train_split})
    return table_keys(stage_table(config), inputs)

"""The shipped experiment configs still describe their committed runs, so that importing a committed state with its
config (`experiment CONFIG --import-state STATE`) reuses its mining and trainings: their options are part of the
stages' keys, and a config that has drifted from its run retrains every strategy (hours on a CPU)."""

import json
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from haystack_hardneg.mine.config import MiningConfig
from haystack_hardneg.train.config import TrainingConfig

ROOT = Path(__file__).parents[1]
RUNS = {"examples/experiment_scifact.yml": "benchmarks/scifact/experiment",
        "benchmarks/semeval-cqa/experiment.yml": "benchmarks/semeval-cqa",
        "benchmarks/glasgow/experiment.yml": "benchmarks/glasgow"}
# Training options a report records as the config asked them (others, like loss auto or a time budget, are
# recorded resolved).
AS_ASKED = ("precision", "epochs", "batch_size", "max_length", "validation_fraction", "head")
TRAINING_DEFAULTS = {f.name: f.default for f in fields(TrainingConfig)}
FILL_DEFAULT = MiningConfig().fill_beyond_window


def _config(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


@pytest.mark.parametrize("config, folder", RUNS.items())
def test_a_shipped_config_asks_for_the_trainings_its_committed_run_recorded(config, folder):
    asked = _config(config).get("training") or {}
    reports = [p for p in sorted((ROOT / folder).glob("training_report_*.json")) if "probe" not in p.stem]
    assert reports, f"no training reports in {folder}"
    for report in reports:
        recorded = json.loads(report.read_text(encoding="utf-8"))["config"]
        for name in AS_ASKED:
            value = asked.get(name, TRAINING_DEFAULTS[name])
            assert value == recorded[name], f"{config} asks training.{name} = {value!r}, the run in {folder} " \
                f"({report.name}) recorded {recorded[name]!r}: its state's trainings would not import"


@pytest.mark.parametrize("config, folder", RUNS.items())
def test_a_shipped_config_mines_as_its_committed_run_did(config, folder):
    asked = (_config(config).get("mining") or {}).get("fill_beyond_window", FILL_DEFAULT)
    mining = json.loads((ROOT / folder / "results.json").read_text(encoding="utf-8"))["mining"]
    assert mining and {counts["fill_beyond_window"] for counts in mining.values()} == {asked}

"""The experiment's stage table: a stage is one entry, and the run, the plan, the expected keys and the state's
export and import all follow it."""

import json
from dataclasses import replace

from haystack_hardneg.experiment import table
from haystack_hardneg.experiment.folder import RunFolder
from haystack_hardneg.experiment.plan import estimate
from haystack_hardneg.experiment.portable import export_state, import_state
from haystack_hardneg.experiment.runner import Experiment
from haystack_hardneg.experiment.stages import stage_key
from haystack_hardneg.experiment.table import Stage, carry_outputs, expected_keys
from haystack_hardneg.files import atomic_write_text, read_jsonl

from experiment.tiny_experiment import tiny_config


def _count_candidates(run) -> None:
    records = read_jsonl(run.folder / RunFolder.candidates("test"))
    atomic_write_text(run.folder / "summary.json",
                      json.dumps({"candidates": sum(len(r["candidates"]) for r in records)}))


def _summary(config):
    """A stage of the test's own: it reads the first stage's candidates and counts them."""
    return [Stage("summary", ("hybrid",), lambda inputs, up: stage_key(hybrid=up["hybrid"]), lambda: ["summary.json"],
                  _count_candidates, estimate=lambda c, numbers, rates: 1.5, carry=carry_outputs)]


def test_a_stage_added_in_one_entry_is_planned_run_exported_and_imported(fixtures, tiny_model, trainable_model,
                                                                        tmp_path, monkeypatch):
    monkeypatch.setattr(table, "STAGES", [*table.STAGES, _summary])
    config = tiny_config(fixtures, tiny_model, trainable_model, tmp_path, strategies=["random"])
    splits = config.resolved().load_splits()
    keys = expected_keys(config.resolved(), splits["test"], splits["train"])
    assert keys["summary"] == stage_key(hybrid=keys["hybrid"])

    experiment = Experiment(config, progress_bar=False)
    plan = experiment.plan(measured=False)
    assert "summary" not in plan["done"]
    free = dict.fromkeys(["seconds_per_document", "dimension", "seconds_per_query", "seconds_per_step",
                          "seconds_per_pair"], 0.0)
    assert estimate(experiment.table, experiment.config, plan["counts"], free)["summary"] == 1.5
    results = experiment.run(report=False)
    assert "summary" in results["stages_ran"] and results["stages_ran"].index("summary") > \
        results["stages_ran"].index("hybrid")
    written = (tmp_path / "run" / "summary.json").read_bytes()
    assert json.loads(written)["candidates"] > 0

    summary = export_state(config, tmp_path / "state")
    assert "summary" in summary["stages"] and (tmp_path / "state" / "files" / "summary.json.gz").is_file()
    elsewhere = replace(config, out=str(tmp_path / "elsewhere"))
    assert "summary" in import_state(elsewhere, tmp_path / "state")["imported"]
    assert (tmp_path / "elsewhere" / "summary.json").read_bytes() == written
    resumed = Experiment(elsewhere, progress_bar=False)
    assert "summary" in resumed.plan(measured=False)["done"]
    again = resumed.run(report=False)
    assert "summary" in again["stages_reused"] and "summary" not in again["stages_ran"]

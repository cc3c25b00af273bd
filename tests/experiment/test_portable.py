"""A run's finished stages carried to another run folder (another machine) without the store, the re-rankers or
the texts: the experiment resumes there without redoing them."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import yaml

from haystack_hardneg.cli import main as cli_main
from haystack_hardneg.experiment.portable import StateError, export_state, import_state
from haystack_hardneg.experiment.runner import Experiment

from experiment.tiny_experiment import tiny_config


def _corpus_texts(fixtures) -> list[str]:
    lines = (fixtures / "scifact-tiny" / "corpus.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


@pytest.fixture(scope="module")
def exported(fixtures, tiny_model, trainable_model, tmp_path_factory):
    """One finished tiny run and its exported state, shared by the tests below (each only reads them)."""
    root = tmp_path_factory.mktemp("exported")
    # Texts as people's data has them, with runs of whitespace the indexing pipeline's cleaner collapses: the texts
    # left out must be rebuilt as the store holds them, not as the file does.
    data = root / "data"
    shutil.copytree(fixtures / "scifact-tiny", data)
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines() if line.strip()]
    for record in corpus:
        record["text"] = record["text"].replace(" ", "   ", 3)
    (data / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    config = tiny_config(fixtures, tiny_model, trainable_model, root, strategies=["random"], data=str(data))
    first = Experiment(config, progress_bar=False).run()
    summary = export_state(config, root / "state")
    return config, first, summary, root


def test_an_exported_run_resumes_in_another_folder_without_redoing_its_work(fixtures, exported, tmp_path):
    config, first, summary, root = exported
    run = root / "run"
    # The fusion of the lists is left to be redone (seconds); the index and BM25 stages travel as records only.
    assert set(summary["stages"]) == {"index", "lexical_index", "first_stage", "mine/random", "train/random",
                                      "rerank/random"}
    state = root / "state"
    stored = {p.relative_to(state).as_posix(): p for p in state.rglob("*") if p.is_file()}
    # No re-ranker, store or BM25 index travels, and the texts the data set holds are left out.
    assert not any("/model/" in name or "qdrant" in name or "bm25" in name for name in stored)
    assert "files/mine/random/triplets.jsonl.gz" not in stored
    lists = gzip.decompress(stored["files/first_stage/train_lists.jsonl.gz"].read_bytes()).decode()
    assert '"score"' in lists and not any(text[:60] in lists for text in _corpus_texts(fixtures))
    assert summary["bytes"] < (run / "first_stage" / "train_lists.jsonl").stat().st_size
    files = {rel: f["rebuild"] for e in json.loads((state / "state.json").read_text())["stages"].values()
             for rel, f in e["files"].items()}
    assert files["first_stage/train_lists.jsonl"] == "lists" and files["mine/random/triplets.jsonl"] == "triplets"

    elsewhere = replace(config, out=str(tmp_path / "elsewhere"))
    imported = import_state(elsewhere, state)
    assert {"first_stage", "mine/random", "train/random", "rerank/random"} <= set(imported["imported"])
    assert imported["left_out"] == []
    for rel in ("first_stage/train_lists.jsonl", "first_stage/test_lists.jsonl", "mine/random/triplets.jsonl",
                "rerank/random.json", "train/random/training_report.json"):
        assert (tmp_path / "elsewhere" / rel).read_bytes() == (run / rel).read_bytes(), rel
    resumed = Experiment(elsewhere, progress_bar=False).run()
    # Only the cheap fusion of the imported lists is redone: no index, no embedding, no training.
    assert resumed["stages_ran"] == ["hybrid"]
    # Nor a warm-up of the models for the plan: the one stage left needs no timing.
    assert "rates" not in json.loads((tmp_path / "elsewhere" / "plan.json").read_text())
    assert not (tmp_path / "elsewhere" / "qdrant").exists() and not (tmp_path / "elsewhere" / "bm25").exists()
    assert not (tmp_path / "elsewhere" / "train" / "random" / "model").exists()
    assert resumed["systems"] == first["systems"]
    assert resumed["stage_seconds"]["train/random"] == first["stage_seconds"]["train/random"]
    # The plan's estimates made before the stages ran travel with them.
    assert resumed["plan_estimate_seconds"]["train/random"] == first["plan_estimate_seconds"]["train/random"]
    assert "rerank/random" in resumed["stages_imported"] and "hybrid" not in resumed["stages_imported"]
    assert "| rerank/random | " in (tmp_path / "elsewhere" / "results.md").read_text()
    assert " (imported) |" in (tmp_path / "elsewhere" / "results.md").read_text()
    assert import_state(elsewhere, state)["imported"] == []  # already there

    # A strategy the state lacks needs mining, so the store is built there after all; the rest stays imported.
    more = Experiment(replace(elsewhere, strategies=["random", "bm25"]), progress_bar=False).run()
    assert set(more["stages_ran"]) == {"index", "mine/bm25", "train/bm25", "rerank/bm25"}
    assert more["systems"]["random re-ranker"]["metrics"] == first["systems"]["random re-ranker"]["metrics"]
    # A state of both strategies imported by a run of one of them (--strategies): the other's stages are carried
    # too, their keys computed with its settings.
    export_state(replace(elsewhere, strategies=["random", "bm25"]), tmp_path / "both")
    one = import_state(replace(config, out=str(tmp_path / "one"), strategies=["bm25"]), tmp_path / "both")
    assert {"mine/bm25", "train/bm25", "mine/random", "train/random"} <= set(one["imported"])
    assert one["left_out"] == []

    # Other training settings: the first stage and the triplets still fit, the re-ranker does not.
    longer = replace(config, out=str(tmp_path / "longer"), training={**config.training, "epochs": 2})
    partial = import_state(longer, state)
    assert {"first_stage", "mine/random"} <= set(partial["imported"])
    assert set(partial["left_out"]) == {"train/random", "rerank/random"}


def test_a_damaged_state_is_refused_and_nothing_is_imported(exported, tmp_path):
    config, _, _, root = exported
    shutil.copytree(root / "state", tmp_path / "state")
    scores = tmp_path / "state" / "files" / "rerank" / "random.json.gz"
    values = json.loads(gzip.decompress(scores.read_bytes()))
    query = next(iter(values["test"]))
    document = next(iter(values["test"][query]))
    values["test"][query][document] += 0.5
    scores.write_bytes(gzip.compress(json.dumps(values).encode()))
    target = replace(config, out=str(tmp_path / "target"))
    with pytest.raises(StateError, match="differs from the file that was exported"):
        import_state(target, tmp_path / "state")
    assert not (tmp_path / "target" / "first_stage").exists()
    assert not (tmp_path / "target" / "stages.json").exists()
    with pytest.raises(StateError, match="no exported experiment state"):
        import_state(target, tmp_path / "nowhere")
    with pytest.raises(StateError, match="outside the run folder"):
        export_state(config, root / "run" / "state")

    # From the command line, in a fresh process: export, then import and run into another folder.
    (tmp_path / "config.yml").write_text(yaml.safe_dump(asdict(config)))
    command = [sys.executable, "-m", "haystack_hardneg.cli", "experiment", str(tmp_path / "config.yml")]
    done = subprocess.run([*command, "--export-state", str(tmp_path / "cli-state")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rerank/random" in done.stdout and (tmp_path / "cli-state" / "state.json").is_file()
    done = subprocess.run([*command, "--out", str(tmp_path / "cli-run"), "--import-state", str(tmp_path / "cli-state")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Imported: " in done.stdout and "Stages run: ['hybrid']" in done.stdout


def _snapshot(root) -> dict[str, str]:
    """Every entry under ``root`` (links as links, not followed) with its bytes' hash or its link target."""
    entries = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            entries[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[rel] = "folder"
    return entries


def _crafted_states(state, outside, tmp_path):
    """States that name paths outside their folders, each otherwise sound: the stage keys match the config and
    every file's hash is right, so only the paths stand between each one and a write or read outside."""
    original = json.loads((state / "state.json").read_text())
    stages = original["stages"]
    rel = "rerank/random.json"
    stored = stages["rerank/random"]["files"][rel]["stored"]
    shutil.copy(state / stored, outside / "bait.gz")  # the right bytes: read, they would import

    def renamed(new_rel):
        def change(stages):
            stages["rerank/random"]["files"][new_rel] = stages["rerank/random"]["files"].pop(rel)
        return change

    def stored_at(where):
        def change(stages):
            stages["rerank/random"]["files"][rel]["stored"] = where
        return change

    def linked(folder):
        (folder / stored).unlink()
        (folder / stored).symlink_to(outside / "bait.gz")

    def linked_state_file(folder):
        (outside / "state.json").write_text((folder / "state.json").read_text())
        (folder / "state.json").unlink()
        (folder / "state.json").symlink_to(outside / "state.json")

    def linked_run_folder(target):
        target.mkdir()
        (target / "rerank").symlink_to(outside, target_is_directory=True)

    cases = {
        "write ../": (renamed("rerank/random/../../../outside/random.json"), None, None),
        "write ../ at the top": (renamed("../outside/random.json"), None, None),
        "write absolute": (renamed(str(outside / "random.json")), None, None),
        "write another stage's file": (renamed("stages.json"), None, None),
        "read ../": (stored_at("files/../../outside/bait.gz"), None, None),
        "read absolute": (stored_at(str(outside / "bait.gz")), None, None),
        "read a link": (None, linked, None),
        "state.json a link": (None, linked_state_file, None),
        "write through a link in the run folder": (None, None, linked_run_folder),
    }
    for case, (change_stages, change_folder, prepare_target) in cases.items():
        folder = tmp_path / f"state {case}"
        shutil.copytree(state, folder)
        if change_stages:
            crafted = json.loads(json.dumps(original))
            change_stages(crafted["stages"])
            (folder / "state.json").write_text(json.dumps(crafted))
        if change_folder:
            change_folder(folder)
        target = tmp_path / f"run {case}"
        if prepare_target:
            prepare_target(target)
        yield case, folder, target


def test_a_state_naming_paths_outside_its_folders_is_refused_before_anything_is_read_or_written(
        exported, tmp_path, capsys, monkeypatch):
    config, _, _, root = exported
    outside = tmp_path / "outside"
    outside.mkdir()
    for case, state, target in _crafted_states(root / "state", outside, tmp_path):
        before = _snapshot(tmp_path)
        with pytest.raises(ValueError, match="outside|symbolic link|not one of its own files") as refused:
            import_state(replace(config, out=str(target)), state)
        assert "\n" not in str(refused.value), case
        assert _snapshot(tmp_path) == before, case  # nothing written anywhere, the run folder included
    # The same state, sound, imports: the refusals above are the paths' doing, not a damaged state.
    assert "rerank/random" in import_state(replace(config, out=str(tmp_path / "sound")), root / "state")["imported"]

    # From the command line: one line, exit code 2, nothing written.
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    (tmp_path / "config.yml").write_text(yaml.safe_dump(asdict(config)))
    state, target = tmp_path / "state write ../", tmp_path / "cli-run"
    before = _snapshot(tmp_path)
    code = cli_main(["experiment", str(tmp_path / "config.yml"), "--out", str(target), "--import-state", str(state)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "leads outside" in error, error
    assert _snapshot(tmp_path) == before


def test_without_numba_cache_dir_a_run_compiles_its_metrics_into_its_own_folder(tmp_path):
    # numba's default cache, beside the installed package, is not safe for runs writing it at once. Checked in a
    # fresh process: the CLI must choose the folder before anything imports numba.
    script = ("import sys; from pathlib import Path; from haystack_hardneg.cli import experiment; "
              "experiment._own_numba_cache(Path(sys.argv[1])); import ranx, numba; print(numba.config.CACHE_DIR)")
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=120, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str((tmp_path / "run" / ".numba-cache").resolve())


def test_repeats_with_another_training_seed_keep_the_imported_triplets_and_need_no_embedding_model(
        fixtures, tiny_model, trainable_model, tmp_path):
    # The ensemble member is a copy that is gone by the time the state is used elsewhere (a GPU machine that only
    # trains): the plan must not load it, and nothing upstream may run again.
    member = tmp_path / "member"
    shutil.copytree(tiny_model, member)
    config = tiny_config(fixtures, str(member), trainable_model, tmp_path, strategies=["random"])
    Experiment(config, progress_bar=False).run()
    export_state(config, tmp_path / "state")
    shutil.rmtree(member)

    # Another training seed and a distillation loss (its plan warm-up needs teacher scores in its rows).
    repeat = replace(config, out=str(tmp_path / "repeat"), training_seed=1,
                     training={**config.training, "loss": "margin_mse"})
    imported = import_state(repeat, tmp_path / "state")
    assert {"first_stage", "mine/random"} <= set(imported["imported"])
    assert {"train/random", "rerank/random"} <= set(imported["left_out"])
    # Trained without the report (a training machine), then reported without training anything again.
    trained_only = Experiment(repeat, progress_bar=False).run(report=False)
    assert set(trained_only["stages_ran"]) == {"hybrid", "train/random", "rerank/random"}
    assert not (tmp_path / "repeat" / "results.json").exists()
    results = Experiment(repeat, progress_bar=False).run()
    assert results["stages_ran"] == [] and "random re-ranker" in results["systems"]
    trained = json.loads((tmp_path / "repeat" / "train" / "random" / "training_report.json").read_text())
    assert trained["config"]["seed"] == 1 and trained["config"]["loss"] == "margin_mse"
    assert (tmp_path / "repeat" / "mine" / "random" / "triplets.jsonl").read_bytes() == \
        (tmp_path / "run" / "mine" / "random" / "triplets.jsonl").read_bytes()
    # The same training seed as the mining seed is the run without one: the same key, nothing to redo.
    same = replace(config, training_seed=0)
    assert Experiment(same, progress_bar=False).run()["stages_ran"] == []

    # Only the repeat's own trainings travel, to sit beside the upstream stages imported from the first state.
    only = export_state(repeat, tmp_path / "trainings", only={"train/random", "rerank/random"})
    assert only["stages"] == ["rerank/random", "train/random"]
    again = replace(repeat, out=str(tmp_path / "again"))
    import_state(again, tmp_path / "state")
    assert set(import_state(again, tmp_path / "trainings")["imported"]) == {"train/random", "rerank/random"}
    rebuilt = Experiment(again, progress_bar=False).run()
    assert set(rebuilt["stages_ran"]) == {"hybrid"} and rebuilt["systems"] == results["systems"]

"""Expected errors on the command line: one line on stderr saying what, where and what to do; exit status 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from haystack_hardneg.cli import main


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _broken_copy(fixtures: Path, tmp_path: Path, line: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(fixtures / "scifact-tiny", data)
    with open(data / "qrels" / "train.tsv", "a", encoding="utf-8") as qrels:
        qrels.write(line)
    return data


def test_bad_data_names_the_file_and_line(capsys, fixtures, tiny_model, tmp_path):
    data = _broken_copy(fixtures, tmp_path, "1043\t17671145\tvery\n")
    lines = len((data / "qrels" / "train.tsv").read_text().splitlines())
    err = _one_line_error(capsys, ["mine", "--data", str(data), "--model", tiny_model, "--out", str(tmp_path / "m")])
    assert f"train.tsv:{lines}" in err and "'very'" in err
    assert not (tmp_path / "m").exists()


def test_bad_config_names_the_key(capsys, tmp_path):
    config = tmp_path / "exp.yml"
    config.write_text("data: data\ntraining: {base_model: m}\nretreive_k: 50\n")
    err = _one_line_error(capsys, ["experiment", str(config)])
    assert "exp.yml" in err and "retreive_k" in err


def test_a_literal_key_in_a_config_is_refused_and_never_written(capsys, tmp_path):
    config = tmp_path / "exp.yml"
    config.write_text("data: data\nout: run\ntraining: {base_model: m}\n"
                      "store: {url: 'https://qdrant.example:6333', api_key: s3cr3t-value}\n")
    err = _one_line_error(capsys, ["experiment", str(config), "--out", str(tmp_path / "run")])
    assert "store.api_key" in err and "api_key_env" in err and "s3cr3t-value" not in err
    assert not (tmp_path / "run").exists()


def test_missing_model_folder(capsys, fixtures, tmp_path):
    err = _one_line_error(capsys, ["index", str(fixtures / "scifact-tiny"), "--model", str(tmp_path / "nowhere"),
                                   "--store", str(tmp_path / "q")])
    assert "nowhere' does not exist" in err and "local folder" in err


def test_url_scheme_is_refused_by_name(capsys, tiny_model, tmp_path):
    assert main(["index", "ftp://example.com/manual.html", "--model", tiny_model, "--store", str(tmp_path / "q")]) == 1
    out = capsys.readouterr().out
    assert "unsupported URL scheme" in out and "ftp://example.com/manual.html" in out


def test_an_over_long_sentence_is_cut_into_word_windows_and_counted(capsys, tiny_model, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    run_on = " ".join(f"word{i}" for i in range(1000))  # one sentence of 1,000 words, as a minified page gives
    corpus.write_text(json.dumps({"_id": "d1", "title": "", "text": f"A short one. {run_on}."}) + "\n")
    assert main(["index", str(corpus), "--model", tiny_model, "--store", str(tmp_path / "q"), "--split-by",
                 "sentence", "--split-length", "3", "--split-overlap", "0", "--max-sentence-words", "200"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # "A short one." and five windows of 200 words, three to a chunk (the sentence whole would be one chunk).
    assert summary["long_sentences_cut_into_words"] == 1 and summary["chunks"] == 2


def test_a_missing_extra_is_named_with_its_pip_command(capsys, fixtures, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bm25s", None)  # what an install without the bm25 extra looks like
    err = _one_line_error(capsys, ["mine", "--data", str(fixtures / "scifact-tiny"), "--model", tiny_model,
                                   "--strategy", "bm25", "--out", str(tmp_path / "m")])
    assert 'pip install "haystack-hardneg[bm25]"' in err


def test_debug_shows_the_traceback(fixtures, tmp_path):
    config = tmp_path / "exp.yml"
    config.write_text("data: data\ntraining: {base_model: m}\nretreive_k: 50\n")
    with pytest.raises(ValueError, match="retreive_k"):
        main(["experiment", str(config), "--debug"])


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def _last_line(stderr: str) -> str:
    """The error line (progress bars of the work done before it come first)."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def test_model_that_cannot_be_loaded_from_the_hub(fixtures, tmp_path):
    done = _cli("index", str(fixtures / "scifact-tiny"), "--model", "no-such-org/no-such-model", "--store",
                str(tmp_path / "q"), HF_HUB_OFFLINE="1")
    assert done.returncode == 2
    line = _last_line(done.stderr)
    assert line.startswith("haystack-hardneg index: Could not load ensemble member 'no-such-org/no-such-model'")
    assert "give a local folder" in line


def test_an_error_with_an_open_store_ends_without_shutdown_noise(fixtures, tiny_model, tmp_path):
    done = _cli("mine", "--data", str(fixtures / "scifact-tiny"), "--model", tiny_model, "--from-store", "--store",
                str(tmp_path / "q"), "--out", str(tmp_path / "m"))
    assert done.returncode == 2
    assert _last_line(done.stderr) == "haystack-hardneg mine: There are no documents to mine negatives from."

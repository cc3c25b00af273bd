import json
import subprocess
import sys
from pathlib import Path

HTML = Path(__file__).parent / "fixtures" / "html"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_index_then_query_from_the_command_line(tiny_model, fixtures, tmp_path):
    store = str(tmp_path / "qdrant")
    common = ["--model", tiny_model, "--store", store, "--index", "docs", "--cache-dir", str(tmp_path / "cache")]
    done = _cli("index", str(fixtures / "scifact-tiny"), str(HTML / "article.html"), str(HTML / "image.png"),
                *common, "--split-length", "60", "--meta-field", "title")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["documents"] == 41
    assert summary["written"] == summary["chunks"] > 41
    assert [f["source"] for f in summary["failed_sources"]] == [str(HTML / "image.png")]
    assert "Embedding documents" in done.stderr  # progress bar

    done = _cli("query", "dishwasher warranty pump motor", *common, "--top-k", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("\n  1. ") + done.stdout.count("\n  2. ") + done.stdout.count("\n  3. ") == 3


def test_missing_model_folder_fails_before_any_work(tmp_path, fixtures):
    done = _cli("index", str(fixtures / "scifact-tiny"), "--model", str(tmp_path / "nowhere"), "--store",
                str(tmp_path / "q"))
    assert done.returncode != 0
    assert "does not exist" in done.stderr
    assert not (tmp_path / "q").exists()

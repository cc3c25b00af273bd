import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sentence_transformers import CrossEncoder

from haystack_hardneg.scoring.settings import RANKER_SETTINGS_FILE

HTML = Path(__file__).parent / "fixtures" / "html"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "haystack_hardneg.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_index_then_query_from_the_command_line(tiny_model, fixtures, tmp_path, capsys):
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

    # The queries in this process (the index command above ran as a user runs it, in a fresh one).
    from haystack_hardneg.cli import main

    def query(*args: str) -> tuple[int, str, str]:
        code = main(["query", *args, *common])  # each closes the local store, so the next one can open it
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = query("dishwasher warranty pump motor", "--top-k", "3")
    assert code == 0
    assert out.count("\n  1. ") + out.count("\n  2. ") + out.count("\n  3. ") == 3

    # A ranker folder with a stored fusion weight chosen on another first stage: `auto` (the default) ranks by the
    # cross-encoder alone and says so; a weight given is used. Grouped by document, no source document appears twice.
    ranker = tmp_path / "ranker"
    CrossEncoder(tiny_model, num_labels=1).save(str(ranker))
    (ranker / RANKER_SETTINGS_FILE).write_text(json.dumps({"fusion_alpha": 0.3}))
    code, out, _ = query("pump", "--ranker", str(ranker))
    assert code == 0 and "cross-encoder alone" in out
    code, out, _ = query("dishwasher warranty pump motor", "--ranker", str(ranker), "--top-k", "8", "--by-document",
                         "--fusion-alpha", "0.3")
    assert code == 0
    assert "fused with the retriever's score at weight 0.30" in out
    ids = re.findall(r"^ +\d+\. \S+  (\S+)", out, flags=re.M)
    parents = [i.split("#")[0] for i in ids]
    assert len(ids) == 8 and len(set(parents)) == 8
    code, out, _ = query("pump", "--ranker", str(ranker), "--fusion-alpha", "none")
    assert code == 0 and "cross-encoder alone" in out
    with pytest.raises(SystemExit) as exit_:  # argparse's exit
        query("pump", "--ranker", str(ranker), "--fusion-alpha", "1.5")
    assert exit_.value.code == 2 and "give auto, none or a number in [0, 1]" in capsys.readouterr().err


def test_missing_model_folder_fails_before_any_work(tmp_path, fixtures):
    done = _cli("index", str(fixtures / "scifact-tiny"), "--model", str(tmp_path / "nowhere"), "--store",
                str(tmp_path / "q"))
    assert done.returncode != 0
    assert "does not exist" in done.stderr
    assert not (tmp_path / "q").exists()


def test_demo_runs_the_shipped_quick_experiment(tiny_model, tmp_path, capsys):
    from haystack_hardneg.cli import main

    assert main(["demo", "--model", tiny_model, "--out", str(tmp_path / "demo"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "Plan: 600 documents, 60 test queries, 120 training queries" in out
    for strategy in ("random", "bm25", "dense", "ensemble", "ensemble_cluster"):
        assert f"| train/{strategy} |" in out
    assert not (tmp_path / "demo").exists()  # a plan writes nothing, not even the run folder

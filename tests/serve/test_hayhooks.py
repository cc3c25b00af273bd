"""The README's Hayhooks example, for real: Hayhooks started on 127.0.0.1 with the example wrapper and a query
pipeline holding our ranker, queried over HTTP, stopped with the test."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from haystack import Document
from sentence_transformers import CrossEncoder

from haystack_hardneg import (
    CrossEncoderRanker,
    EnsembleDocumentEmbedder,
    EnsembleDocumentWriter,
    EnsembleTextEmbedder,
    build_query_pipeline,
    open_document_store,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "hayhooks"
TEXTS = ["the vaccine reduced infection risk in mice", "tumor growth depends on a signaling pathway",
         "heart and kidney disease in clinical patients", "blood levels of the drug increased with dose"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait_until_deployed(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if "ranked_search" in response.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"Hayhooks did not deploy the pipeline within {seconds} s")


def test_hayhooks_serves_a_pipeline_with_our_ranker(tiny_model, tmp_path):
    embedder = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    embedder.warm_up()
    store = open_document_store(path=str(tmp_path / "q"), embedding_dim=32, progress_bar=False)
    EnsembleDocumentWriter(document_store=store).run(
        embedder.run([Document(id=f"d{i}", content=t) for i, t in enumerate(TEXTS)])["documents"])
    CrossEncoder(tiny_model, num_labels=1).save(str(tmp_path / "ce"))
    pipeline = build_query_pipeline(EnsembleTextEmbedder(members=[tiny_model]), store, top_k=4,
                                    ranker=CrossEncoderRanker(model=str(tmp_path / "ce"), top_k=4))
    (tmp_path / "pipeline.yml").write_text(pipeline.dumps())
    store.close()
    pipelines = tmp_path / "pipelines"
    shutil.copytree(EXAMPLE, pipelines)
    port = _free_port()
    # As a user starts it: no allowlist variable; the wrapper's import of haystack_hardneg is what lets it load.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAYSTACK_")}
    environment.update(HARDNEG_PIPELINE=str(tmp_path / "pipeline.yml"), HAYHOOKS_DISABLE_SSL="true")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "hayhooks"), "run", "--host", "127.0.0.1", "--port", str(port),
         "--pipelines-dir", str(pipelines)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, start_new_session=True)
    try:
        _wait_until_deployed(f"http://127.0.0.1:{port}/status", server)
        answer = _post(f"http://127.0.0.1:{port}/ranked_search/run", {"query": "vaccine infection", "top_k": 3})
        documents = answer["result"]
        assert [d["id"] for d in documents] and len(documents) == 3
        assert {d["id"] for d in documents} <= {"d0", "d1", "d2", "d3"}
        scores = [d["score"] for d in documents]
        assert scores == sorted(scores, reverse=True)
        assert all(d["cross_encoder_score"] == d["score"] for d in documents)  # no fusion: the stock meaning
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

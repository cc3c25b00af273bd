"""An ensemble member served by a real OpenAI-compatible embedding server (Infinity, from PyPI, started here on
127.0.0.1 in a virtual environment of its own: `make infinity`), used through Haystack's OpenAI embedders.

The same model served and loaded locally gives the same vectors and the same mined triplets; a server killed
mid-indexing is one line naming the member, and the re-run asks the restarted server only for what is missing
(counted on the server: its Prometheus metrics)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.utils import Secret
from sentence_transformers import SentenceTransformer

from haystack_hardneg import ClusterNegativeMiner, EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.embed.cache import EmbeddingCache
from haystack_hardneg.ingest.beir import load_beir

ROOT = Path(__file__).parents[2]
INFINITY = os.environ.get("HARDNEG_INFINITY") or str(ROOT / ".venv-infinity" / "bin" / "infinity_emb")
pytestmark = pytest.mark.skipif(not Path(INFINITY).is_file(),
                                reason=f"no Infinity server at {INFINITY}: `make infinity` installs it")
KEY = "HARDNEG_TEST_EMBEDDINGS_KEY"


def classic_folder(model: str, folder: Path) -> str:
    """The model saved in the format Infinity's sentence-transformers (< 4) reads: the same weights, tokenizer,
    truncation and mean pooling, the module types and configs under their classic names."""
    shutil.copytree(model, folder)
    length = SentenceTransformer(model).max_seq_length
    dimension = json.loads((folder / "1_Pooling" / "config.json").read_text())["embedding_dimension"]
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": length, "do_lower_case": False}))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dimension, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    return str(folder)


class Infinity:
    """One Infinity server process serving one model folder as "served"."""

    def __init__(self, model: str, log: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.model, self.log = model, log
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Infinity":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
        self.process = subprocess.Popen(
            [INFINITY, "v2", "--model-id", self.model, "--served-model-name", "served", "--host", "127.0.0.1",
             "--port", str(self.port), "--engine", "torch", "--device", "cpu"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(self.log.read_text()[-3000:])

    def embedding_requests(self) -> int:
        metrics = urllib.request.urlopen(f"{self.url}/metrics", timeout=5).read().decode()
        found = re.search(r'http_requests_total\{handler="/embeddings",method="POST",status="2xx"\} ([0-9.]+)',
                          metrics)
        return int(float(found.group(1))) if found else 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    server = Infinity(classic_folder(tiny_model, folder / "model"), folder / "infinity.log").start()
    yield server
    server.stop()


def _pair(url: str, **settings) -> dict:
    key = Secret.from_env_var(KEY)
    return {"text_embedder": OpenAITextEmbedder(api_key=key, model="served", api_base_url=url, **settings),
            "document_embedder": OpenAIDocumentEmbedder(api_key=key, model="served", api_base_url=url,
                                                        progress_bar=False, **settings)}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY, "not-a-real-key")  # Infinity takes any key; the embedders insist on one


def test_served_and_local_give_the_same_vectors_and_the_same_triplets(served, fixtures, tiny_model, tiny_model_b):
    documents = [Document(content=t) for t in ("pumps move water uphill", "a warranty covers repairs " * 40)]
    local = EnsembleDocumentEmbedder(members=[tiny_model], progress_bar=False)
    remote = EnsembleDocumentEmbedder(members=[_pair(served.url)], progress_bar=False)
    for embedder in (local, remote):
        embedder.warm_up()
    cosines = [float(np.dot(a.embedding, b.embedding)) for a, b in
               zip(local.run(documents)["documents"], remote.run(documents)["documents"])]
    assert min(cosines) >= 0.999, cosines

    split = load_beir(fixtures / "scifact-tiny", "train")
    triplets = {}
    for name, members in (("served", [_pair(served.url), tiny_model_b]), ("local", [tiny_model, tiny_model_b])):
        miner = ClusterNegativeMiner(text_embedder=EnsembleTextEmbedder(members=members), progress_bar=False,
                                     mining={"strategy": "ensemble_cluster", "num_negatives": 2,
                                             "rank_window": [0, 20], "n_clusters": 4})
        miner.warm_up()
        triplets[name] = miner.run(queries=split.queries, positives=split.qrels, documents=split.corpus)["triplets"]
    assert triplets["served"] == triplets["local"] and len(triplets["local"]) > 0


INDEX = "import sys; from haystack_hardneg.cli import main; sys.exit(main(sys.argv[1:]))"


def test_a_server_killed_mid_indexing_is_one_line_and_the_rerun_asks_only_for_what_is_missing(
        tiny_model, fixtures, tmp_path):
    import yaml

    server = Infinity(classic_folder(tiny_model, tmp_path / "model"), tmp_path / "infinity.log").start()
    try:
        pair = {k: v.to_dict() for k, v in _pair(server.url, max_retries=0, timeout=5).items()}
        (tmp_path / "ensemble.yml").write_text(yaml.safe_dump({"members": [{**pair, "batch_size": 2}]}))
        command = [sys.executable, "-c", INDEX, "index", str(fixtures / "scifact-tiny"), "--ensemble",
                   str(tmp_path / "ensemble.yml"), "--store", str(tmp_path / "q"), "--cache-dir",
                   str(tmp_path / "cache")]
        env = {**os.environ, KEY: "not-a-real-key"}
        indexing = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        while server.embedding_requests() < 4 and indexing.poll() is None:
            time.sleep(0.02)
        server.stop()  # mid-indexing: a few batches answered, the rest not
        _, stderr = indexing.communicate(timeout=300)
        assert indexing.returncode == 2, stderr[-3000:]
        lines = [line for line in stderr.splitlines() if line.strip() and "it/s]" not in line and "text/s]" not in line]
        assert len(lines) == 1 and lines[0].startswith("haystack-hardneg index: Ensemble member "
                                                       "'OpenAIDocumentEmbedder(served)' failed"), lines
        assert "run the same command to resume" in lines[0]
        cache = EmbeddingCache(tmp_path / "cache")
        cached = len(cache)  # the dimension probe and every batch answered before the server went
        cache.close()
        chunks = 55  # scifact-tiny's chunks at the default split
        assert 1 < cached < chunks

        server.start()  # a new process: its request count starts at 0
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout[done.stdout.index("{"):])
        assert summary["written"] == chunks
        missing = chunks - (cached - 1)  # the probe is not a chunk
        assert server.embedding_requests() == -(-missing // 2)  # batches of 2: nothing already embedded asked again
    finally:
        server.stop()

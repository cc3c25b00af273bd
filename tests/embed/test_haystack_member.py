"""A Haystack embedder pair as an ensemble member: the same vectors as the model loaded directly, serialised in
YAML without its secrets, cached under its identity, and failing in one line that names it."""

import json

import numpy as np
import pytest
import yaml
from haystack import Document
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.utils import Secret
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder,
    SentenceTransformersTextEmbedder,
)

from haystack_hardneg import EnsembleDocumentEmbedder, EnsembleTextEmbedder
from haystack_hardneg.embed.ensemble import MemberSpec
from haystack_hardneg.embed.haystack_member import MemberFailedError, member_fingerprint

DOCS = [Document(content=t) for t in ("pumps move water uphill", "a warranty covers two years of repairs",
                                      "returns are free within thirty days")]


def _pair(model: str, **extra) -> dict:
    return {"text_embedder": SentenceTransformersTextEmbedder(model=model, progress_bar=False, **extra),
            "document_embedder": SentenceTransformersDocumentEmbedder(model=model, progress_bar=False, **extra)}


def _vectors(embedder) -> np.ndarray:
    embedder.warm_up()
    return np.array([d.embedding for d in embedder.run(DOCS)["documents"]])


def test_a_haystack_pair_gives_the_vectors_of_the_same_model_loaded_directly(tiny_model, tiny_model_b):
    direct = _vectors(EnsembleDocumentEmbedder(members=[tiny_model, tiny_model_b], progress_bar=False))
    through = _vectors(EnsembleDocumentEmbedder(members=[_pair(tiny_model), tiny_model_b], progress_bar=False))
    assert direct.shape == through.shape == (3, 32 + 48)  # the pair's dimension found from the component
    np.testing.assert_allclose(np.sum(direct * through, axis=1), 1.0, atol=1e-5)
    query = EnsembleTextEmbedder(members=[_pair(tiny_model), tiny_model_b])
    query.warm_up()
    plain = EnsembleTextEmbedder(members=[tiny_model, tiny_model_b])
    plain.warm_up()
    assert float(np.dot(query.run("pumps")["embedding"], plain.run("pumps")["embedding"])) == pytest.approx(1.0,
                                                                                                          abs=1e-5)


def test_the_pair_round_trips_through_yaml_in_a_fresh_process(tiny_model, tmp_path):
    from processes import fresh_python

    embedder = EnsembleDocumentEmbedder(members=[{**_pair(tiny_model), "weight": 2.0}, tiny_model],
                                        progress_bar=False)
    text = yaml.safe_dump({"components": {"embedder": embedder.to_dict()}, "connections": []})
    (tmp_path / "p.yml").write_text(text)
    code = """
import json, sys
from haystack import Document
from haystack_hardneg.pipelines import load_pipeline
embedder = load_pipeline(sys.argv[1]).get_component("embedder")
embedder.warm_up()
out = embedder.run([Document(content="pumps move water uphill")])["documents"][0]
print(json.dumps({"types": [type(m.document_embedder).__name__ for m in embedder.members], "vector": out.embedding}))
"""
    done = fresh_python(code, str(tmp_path / "p.yml"))
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["types"] == ["SentenceTransformersDocumentEmbedder", "NoneType"]
    embedder.warm_up()
    here = embedder.run([Document(content="pumps move water uphill")])["documents"][0].embedding
    np.testing.assert_allclose(loaded["vector"], here, atol=1e-6)


def test_an_api_key_is_never_written_in_the_config_or_the_member_identity(monkeypatch):
    monkeypatch.setenv("MY_EMBEDDING_KEY", "sk-very-secret-value")
    key = Secret.from_env_var("MY_EMBEDDING_KEY")
    pair = {"text_embedder": OpenAITextEmbedder(api_key=key, model="bge-small", api_base_url="http://127.0.0.1:9/v1"),
            "document_embedder": OpenAIDocumentEmbedder(api_key=key, model="bge-small",
                                                        api_base_url="http://127.0.0.1:9/v1")}
    embedder = EnsembleDocumentEmbedder(members=[pair])
    written = yaml.safe_dump(embedder.to_dict())
    assert "sk-very-secret-value" not in written and "MY_EMBEDDING_KEY" in written
    spec = embedder.members[0]
    assert spec.name == "OpenAIDocumentEmbedder(bge-small)"
    # The identity follows what shapes a vector (model, server), not the key, a batch size or a timeout.
    other_key = {**pair, "document_embedder": OpenAIDocumentEmbedder(
        api_key=Secret.from_env_var("OTHER_KEY", strict=False), model="bge-small", batch_size=4, timeout=99,
        api_base_url="http://127.0.0.1:9/v1")}
    other_model = {**pair, "document_embedder": OpenAIDocumentEmbedder(
        api_key=key, model="bge-large", api_base_url="http://127.0.0.1:9/v1")}
    assert member_fingerprint(MemberSpec(**other_key)) == member_fingerprint(spec)
    assert member_fingerprint(MemberSpec(**other_model)) != member_fingerprint(spec)


def test_a_pair_is_cached_under_its_identity_and_asked_once_per_text(tiny_model, tmp_path):
    first = EnsembleDocumentEmbedder(members=[_pair(tiny_model)], cache_dir=str(tmp_path), progress_bar=False)
    vectors = _vectors(first)
    # Another pair of the same model with another batch size (a runtime setting) asks its embedder nothing.
    second = EnsembleDocumentEmbedder(members=[_pair(tiny_model, batch_size=2)], cache_dir=str(tmp_path),
                                      progress_bar=False)
    second.warm_up()
    member = second.members[0].document_embedder
    calls = []
    original = member.run
    member.run = lambda documents: calls.append(len(documents)) or original(documents=documents)
    np.testing.assert_allclose(_vectors(second), vectors, atol=1e-6)
    assert calls == []
    new = [Document(content="a text the cache has not seen")]
    second.run(new + DOCS)
    assert calls == [1]


def test_a_failing_member_is_one_error_naming_it_and_what_was_embedded_stays_cached(tiny_model, tmp_path):
    pair = _pair(tiny_model)
    embedder = EnsembleDocumentEmbedder(members=[{**pair, "batch_size": 1}], cache_dir=str(tmp_path),
                                        progress_bar=False)
    embedder.warm_up()
    member = embedder.members[0].document_embedder
    original, calls = member.run, []

    def gone_after_two(documents):  # the server went away after two calls
        calls.append(len(documents))
        if len(calls) > 2:
            raise ValueError("the server answered 401: invalid key")
        return original(documents=documents)

    member.run = gone_after_two
    with pytest.raises(MemberFailedError, match=r"member 'SentenceTransformersDocumentEmbedder\(.*tiny-a\)' failed "
                                                r"\(ValueError: the server answered 401.*run the same command"):
        embedder.run(DOCS)
    assert calls == [1, 1, 1]  # not retried: a 401 does not pass by waiting
    member.run = lambda documents: calls.append(len(documents)) or original(documents=documents)
    calls.clear()
    embedder.run(DOCS)
    assert calls == [1]  # only the text that had failed


def test_a_member_needs_both_embedders_and_not_a_model_too(tiny_model):
    pair = _pair(tiny_model)
    with pytest.raises(ValueError, match="needs both a text_embedder"):
        MemberSpec(document_embedder=pair["document_embedder"])
    with pytest.raises(ValueError, match="a model or an embedder pair, not both"):
        MemberSpec(model=tiny_model, **pair)


def test_a_call_that_fails_for_a_passing_reason_is_tried_again_with_back_off(tiny_model, caplog):
    embedder = EnsembleDocumentEmbedder(members=[_pair(tiny_model)], progress_bar=False)
    embedder.warm_up()
    member = embedder.members[0].document_embedder
    original, calls = member.run, []

    def flaky(documents):  # a server that drops the first two connections (SentenceTransformers has no retries)
        calls.append(len(documents))
        if len(calls) <= 2:
            raise ConnectionError("connection reset by peer")
        return original(documents=documents)

    member.run = flaky
    np.testing.assert_allclose(_vectors(embedder).shape, (3, 32))
    assert calls == [3, 3, 3]
    assert sum("trying again in" in r.getMessage() for r in caplog.records) == 2


def test_the_documented_yaml_member_builds_the_api_embedders_and_writes_no_key(monkeypatch):
    import re
    from pathlib import Path

    monkeypatch.setenv("OPENAI_API_KEY", "sk-documented-secret")
    text = (Path(__file__).parents[2] / "docs" / "how-to" / "pipelines.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "text_embedder" in b)
    data = {"type": "haystack_hardneg.embed.components.EnsembleDocumentEmbedder",
            "init_parameters": yaml.safe_load(block)}
    embedder = EnsembleDocumentEmbedder.from_dict(data)
    served = embedder.members[0]
    assert isinstance(served.document_embedder, OpenAIDocumentEmbedder)
    assert isinstance(served.text_embedder, OpenAITextEmbedder)
    assert served.name == "OpenAIDocumentEmbedder(text-embedding-3-small)"
    assert "sk-documented-secret" not in yaml.safe_dump(embedder.to_dict())

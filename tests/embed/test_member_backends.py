"""A sentence-transformers member on ONNX Runtime or OpenVINO: exported once, run as the model pools, used only
when its vectors are torch's (cosine >= 0.999 on check texts), in the same vector space (ensemble identity)."""

import logging

import numpy as np
import pytest
from haystack import Document

from haystack_hardneg import EnsembleDocumentEmbedder, machine
from haystack_hardneg.embed.ensemble import MemberSpec
from haystack_hardneg.machine import cpu, describe_cpu, missing_bf16, missing_int8

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

DOCS = [Document(content=t) for t in ("pumps move water uphill", "a warranty covers two years of repairs " * 20,
                                      "returns are free within thirty days", "x")]


def _embedder(model, tmp_path, **member):
    embedder = EnsembleDocumentEmbedder(members=[{"model": model, **member}], cache_dir=str(tmp_path / "cache"),
                                        progress_bar=False)
    embedder.warm_up()
    return embedder


def _vectors(embedder) -> np.ndarray:
    return np.array([d.embedding for d in embedder.run(DOCS)["documents"]])


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_an_exported_member_gives_torchs_vectors_in_the_same_space(tiny_model, tmp_path, backend):
    torch = _embedder(tiny_model, tmp_path)
    reference = _vectors(torch)
    exported = _embedder(tiny_model, tmp_path, backend=backend)
    assert exported.encoder.backends[0].exported is not None  # the graph runs, not torch
    vectors = _vectors(exported)
    assert np.min(np.sum(reference * vectors, axis=1)) >= 0.999
    assert exported.ensemble_id == torch.ensemble_id  # one vector space: a collection indexed on torch is queried
    # Cached apart from torch's vectors (they differ in the last digits): the torch run left 4 texts in the cache,
    # the exported member computed its own 4.
    assert exported.encoder.cache.misses == len(DOCS)
    graphs = sorted(p.name for p in (tmp_path / "cache" / "exports").iterdir())
    again = _embedder(tiny_model, tmp_path, backend=backend)  # the export is made once
    assert sorted(p.name for p in (tmp_path / "cache" / "exports").iterdir()) == graphs
    np.testing.assert_allclose(_vectors(again), vectors, atol=1e-6)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_int8_is_used_only_within_the_cosine_limit(tiny_model, tmp_path, backend, caplog):
    reference = _vectors(_embedder(tiny_model, tmp_path))
    with caplog.at_level(logging.WARNING):
        quantized = _embedder(tiny_model, tmp_path, backend=backend, int8=True)
    # Without 8-bit dot-product instructions int8 rarely pays: said at WARNING, naming what is missing.
    lacking = missing_int8()
    assert (f"this CPU ({describe_cpu(cpu())}) has no {lacking} instructions" in caplog.text) == bool(lacking)
    vectors = _vectors(quantized)
    cosine = float(np.min(np.sum(reference * vectors, axis=1)))
    if quantized.encoder.backends[0].exported is None:  # refused: torch, said at WARNING
        assert f"runs on torch fp32, not {backend} int8: its vectors are at cosine" in caplog.text
        np.testing.assert_allclose(vectors, reference, atol=1e-6)
    else:
        assert cosine >= 0.999


@pytest.mark.skipif(missing_bf16() is not None, reason="this CPU has no bfloat16 instructions (refusal tested below)")
@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_a_bf16_member_gives_torchs_fp32_vectors_where_the_cpu_computes_bf16(tiny_model, tmp_path, backend, caplog):
    reference = _vectors(_embedder(tiny_model, tmp_path))
    with caplog.at_level(logging.INFO):
        bf16 = _embedder(tiny_model, tmp_path, backend=backend, precision="bf16")
    vectors = _vectors(bf16)
    assert bf16.ensemble_id == _embedder(tiny_model, tmp_path).ensemble_id
    if bf16.encoder.backends[0].exported is None:  # a random tiny model can fall below the limit: refused, said
        assert f"runs on torch fp32, not {backend} bf16: its vectors are at cosine" in caplog.text
        np.testing.assert_array_equal(vectors, reference)
        assert backend != "torch"  # torch's bfloat16 keeps this model's vectors within the limit
        return
    assert f"runs on {backend} bf16 (lowest cosine" in caplog.text
    assert np.min(np.sum(reference * vectors, axis=1)) >= 0.999
    assert not np.array_equal(vectors, reference)  # computed in bfloat16, not read back from torch fp32's cache
    assert bf16.encoder.cache.misses == len(DOCS)


def test_bf16_is_refused_on_a_cpu_without_bf16_instructions(tiny_model, tmp_path, monkeypatch, caplog):
    reference = _vectors(_embedder(tiny_model, tmp_path))
    without = {**cpu(), "model": "A CPU without bf16", "flags": ["avx2", "fma"]}
    monkeypatch.setattr(machine, "cpu", lambda: without)
    with caplog.at_level(logging.WARNING):
        member = _embedder(tiny_model, tmp_path, precision="bf16")
    assert ("asks for precision bf16, and A CPU without bf16 (avx2, fma) has no AVX-512 BF16 or AMX-BF16"
            in caplog.text)
    np.testing.assert_array_equal(_vectors(member), reference)  # torch fp32: its vectors, from the cache
    assert member.encoder.cache.misses == 0


def test_backend_settings_are_checked_when_the_member_is_made(tiny_model):
    with pytest.raises(ValueError, match="backend must be one of"):
        MemberSpec(model=tiny_model, backend="tensorrt")
    with pytest.raises(ValueError, match="int8 needs backend onnx or openvino"):
        MemberSpec(model=tiny_model, int8=True)
    assert MemberSpec(model=tiny_model).to_dict() == {"model": tiny_model, "weight": 1.0, "query_prompt": "",
                                                      "document_prompt": "", "max_seq_length": None, "batch_size": 32}
    assert MemberSpec(model=tiny_model, backend="onnx").to_dict()["backend"] == "onnx"
    with pytest.raises(ValueError, match="precision must be one of"):
        MemberSpec(model=tiny_model, precision="fp16")
    with pytest.raises(ValueError, match="precision bf16 needs backend torch or openvino"):
        MemberSpec(model=tiny_model, backend="onnx", precision="bf16")
    spec = MemberSpec(model=tiny_model, backend="openvino", int8=True, precision="bf16")
    assert MemberSpec.coerce(spec.to_dict()) == spec

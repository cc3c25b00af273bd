"""Exports of tiny cross-encoders built here (ONNX Runtime and, where it installs, OpenVINO): scores as on torch,
the quality gate, the ranker on every backend, YAML with an exported backend in a fresh process, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from haystack import Document, Pipeline
from sentence_transformers import CrossEncoder

from haystack_hardneg import CrossEncoderRanker, ExportConfig, export_model
from haystack_hardneg.cli import main
from haystack_hardneg.export.gate import gate_records
from haystack_hardneg.export.job import REFERENCE_SCORES_FILE, check_and_record
from haystack_hardneg.graphs.convert import export_onnx
from haystack_hardneg.machine import cpu, missing_bf16
from haystack_hardneg.mine.candidates import load_candidates
from haystack_hardneg.rank.runtime import ExportedCrossEncoder
from haystack_hardneg.scoring.settings import (
    CALIBRATION_PAIRS_FILE,
    VALIDATION_CANDIDATES_FILE,
    read_default_backend,
    read_ranker_settings,
)
from haystack_hardneg.train.heads import build_cross_encoder

from processes import fresh_python
from tiny_models import WORDS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

QUERIES = [" ".join(WORDS[i:i + 3]) for i in range(40, 76, 3)]  # 12 queries
# Two of them longer than the models' 64 tokens: truncation must match too.
PASSAGES = [" ".join(WORDS[(7 * i) % 90:(7 * i) % 90 + 5 + i % 9]) for i in range(14)] + [
    " ".join(WORDS[:80]), " ".join(reversed(WORDS[10:95]))]


def raw_scores(model: CrossEncoder, pairs) -> np.ndarray:
    return np.asarray(model.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True), dtype=np.float64)


def save_with_candidates(model: CrossEncoder, folder) -> str:
    """The model saved with validation candidates whose relevant document is the one it scores highest, so that
    its own nDCG@10 is 1 and any damage shows."""
    model.save(str(folder))
    records = []
    for q, query in enumerate(QUERIES):
        texts = [PASSAGES[(q + j) % len(PASSAGES)] for j in range(8)]
        best = int(np.argmax(raw_scores(model, [(query, t) for t in texts])))
        records.append({"query_id": f"q{q}", "query": query, "positive_ids": [f"q{q}-{best}"],
                        "candidates": [{"id": f"q{q}-{j}", "text": t, "score": 1.0 - j / 10}
                                       for j, t in enumerate(texts)]})
    (folder / VALIDATION_CANDIDATES_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(folder)


@pytest.fixture(scope="module")
def pooled_folder(trainable_model, tmp_path_factory) -> str:
    """A tiny cross-encoder as TripletTrainer saves one: Transformer, mean Pooling, one-logit Dense."""
    torch.manual_seed(0)
    return save_with_candidates(build_cross_encoder(trainable_model, "mean", max_length=64),
                                tmp_path_factory.mktemp("export") / "pooled")


@pytest.fixture
def folder(pooled_folder, tmp_path) -> str:
    """A fresh copy per test: exports write into the folder."""
    return str(shutil.copytree(pooled_folder, tmp_path / "model"))


def test_onnx_export_scores_as_torch_and_becomes_the_default(folder):
    # Speed is left out of the choice here (min_speedup 0; timed in its own tests): a loaded machine must not decide.
    record = export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=0), log=lambda _: None)
    assert record["file_name"] == "onnx/model.onnx" and record["gate"]["passed"] and record["default"]
    assert record["gate"]["ndcg@10"]["fp32"] == pytest.approx(1.0)
    assert abs(record["gate"]["ndcg@10"]["loss"]) < 1e-9
    pairs = [(q, p) for q in QUERIES[:3] for p in PASSAGES]
    exported = ExportedCrossEncoder(folder, "onnx").predict(pairs, batch_size=5)
    np.testing.assert_allclose(exported, raw_scores(CrossEncoder(folder), pairs), atol=1e-4)
    assert read_default_backend(folder)[:2] == ("onnx", "onnx/model.onnx")
    assert "## Exported backends" in open(f"{folder}/README.md").read()


def test_a_classifier_head_exports_its_logits(trainable_model, tmp_path):
    torch.manual_seed(1)
    model = build_cross_encoder(trainable_model, "classifier", max_length=64)
    model.save(str(tmp_path / "classifier"))
    export_onnx(CrossEncoder(str(tmp_path / "classifier")), tmp_path / "classifier" / "onnx" / "model.onnx")
    pairs = [(QUERIES[0], p) for p in PASSAGES]
    np.testing.assert_allclose(ExportedCrossEncoder(tmp_path / "classifier", "onnx").predict(pairs),
                               raw_scores(model, pairs), atol=1e-4)


def test_optimised_and_int8_onnx_exports_stay_close(folder):
    reference = Path(folder, REFERENCE_SCORES_FILE)
    stamps = []
    for optimize, quantize in (("O2", None), (None, "int8")):
        record = export_model(ExportConfig(model_dir=folder, backend="onnx", optimize=optimize, quantize=quantize,
                                           make_default=False), log=lambda _: None)
        assert (record["file_name"], record["default"]) == (
            {"O2": "onnx/model_O2.onnx"}.get(optimize, "onnx/model_qint8.onnx"), False)
        assert record["gate"]["score_correlation"] > 0.9
        stamps.append(reference.stat().st_mtime_ns)
    # The fp32 scores of the first check are kept for the second: the same weights, the same candidates.
    assert stamps[0] == stamps[1]
    assert set(read_ranker_settings(folder)["exports"]) == {"onnx/model_O2.onnx", "onnx/model_qint8.onnx"}
    assert read_default_backend(folder)[:2] == ("torch", None)


def test_the_gate_refuses_a_damaged_export(folder):
    config = ExportConfig(model_dir=folder, backend="onnx")
    export_model(config, log=lambda _: None)
    onnx = pytest.importorskip("onnx")
    path = f"{folder}/onnx/model.onnx"
    graph = onnx.load(path)
    rng = np.random.default_rng(0)
    for tensor in graph.graph.initializer:  # every weight shuffled: the same values, no longer where they belong
        values = onnx.numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size > 1:
            tensor.CopyFrom(onnx.numpy_helper.from_array(rng.permutation(values.ravel()).reshape(values.shape),
                                                         tensor.name))
    onnx.save(graph, path)
    records = [json.loads(line) for line in open(f"{folder}/{VALIDATION_CANDIDATES_FILE}")]
    record = check_and_record(config, Path(folder), "onnx/model.onnx", CrossEncoder(folder), records,
                              log=lambda _: None)
    assert not record["gate"]["passed"] and record["gate"]["ndcg@10"]["loss"] > config.max_loss
    assert not record["default"]
    assert read_default_backend(folder)[:2] == ("torch", None)  # the damaged file is no longer the default
    assert "LOSS ABOVE THE LIMIT" in open(f"{folder}/README.md").read()


def test_openvino_static_int8_is_calibrated_and_checked(folder):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    record = export_model(ExportConfig(model_dir=folder, backend="openvino", quantize="int8", calibration_pairs=40),
                          log=lambda _: None)
    assert record["file_name"] == "openvino/openvino_model_qint8_quantized.xml"
    # Calibrated on every other query, checked on the others.
    assert record["gate"]["queries"] == len(QUERIES) // 2 and record["gate"]["score_correlation"] > 0.9
    pairs = [(QUERIES[0], p) for p in PASSAGES]
    fp32 = ExportedCrossEncoder(folder, "openvino").predict(pairs)
    np.testing.assert_allclose(fp32, raw_scores(CrossEncoder(folder), pairs), atol=1e-3)


def test_the_openvino_export_holds_the_attention_pattern_its_cpu_plugin_fuses(folder):
    ov = pytest.importorskip("openvino")
    record = export_model(ExportConfig(model_dir=folder, backend="openvino"), log=lambda _: None)
    ops = [op.get_type_name() for op in ov.Core().read_model(str(Path(folder) / record["file_name"])).get_ops()]
    layers = CrossEncoder(folder)[0].auto_model.config.num_hidden_layers
    # Matmul, mask add, softmax, matmul per layer, without the NaN guards of torch's SDPA export (IsNaN, Select),
    # which OpenVINO does not fuse; the scores stay those of torch.
    assert ops.count("Softmax") == layers and "IsNaN" not in ops
    assert record["gate"]["passed"]


def test_static_int8_calibrates_on_the_kept_training_pairs_and_checks_every_query(folder):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    training_pairs = [{"query": q, "text": p} for q in ("kept training query", WORDS[3]) for p in PASSAGES]
    Path(folder, CALIBRATION_PAIRS_FILE).write_text("".join(json.dumps(r) + "\n" for r in training_pairs))
    messages = []
    record = export_model(ExportConfig(model_dir=folder, backend="openvino", quantize="int8", calibration_pairs=20),
                          log=messages.append)
    assert any("20 (query, passage) pairs of the model's training pairs" in m for m in messages)
    assert record["calibrated_on"].startswith("the model's training pairs")
    assert record["gate"]["queries"] == len(QUERIES) and record["gate"]["score_correlation"] > 0.9
    assert "int8 calibrated on the model's training pairs" in open(f"{folder}/README.md").read()


def ranked_ids_and_scores(ranker: CrossEncoderRanker) -> list[tuple[str, float]]:
    documents = [Document(id=f"d{i}", content=p, score=1.0 / (i + 1)) for i, p in enumerate(PASSAGES)]
    ranker.warm_up()
    return [(d.id, d.score) for d in ranker.run(query=QUERIES[0], documents=documents)["documents"]]


def test_the_ranker_scores_alike_on_every_backend(folder):
    export_model(ExportConfig(model_dir=folder, backend="onnx", make_default=False), log=lambda _: None)
    torch_run = ranked_ids_and_scores(CrossEncoderRanker(model=folder, top_k=16))
    assert CrossEncoderRanker(model=folder).to_dict()["init_parameters"]["backend"] == "auto"
    onnx_ranker = CrossEncoderRanker(model=folder, top_k=16, backend="onnx",
                                     model_kwargs={"file_name": "onnx/model.onnx"})
    onnx_run = ranked_ids_and_scores(onnx_ranker)
    assert onnx_ranker.effective_backend == ("onnx", "onnx/model.onnx")
    assert [i for i, _ in onnx_run] == [i for i, _ in torch_run]
    np.testing.assert_allclose([s for _, s in onnx_run], [s for _, s in torch_run], atol=1e-5)
    auto = CrossEncoderRanker(model=folder, top_k=16)
    ranked_ids_and_scores(auto)
    assert auto.effective_backend == ("torch", None)  # the export was not made the default


RUN_RANKER = """
import json, sys
import haystack_hardneg
from haystack import Document, Pipeline
pipeline = Pipeline.loads(open(sys.argv[1]).read())
documents = [Document(id=f"d{i}", content=t) for i, t in enumerate(json.loads(sys.argv[2]))]
result = pipeline.run({"ranker": {"query": sys.argv[3], "documents": documents}})
print(json.dumps(pipeline.get_component("ranker").effective_backend))
print(json.dumps([[d.id, d.score] for d in result["ranker"]["documents"]]))
"""


def test_a_yaml_pipeline_with_an_onnx_ranker_loads_in_a_fresh_process(folder, tmp_path):
    export_model(ExportConfig(model_dir=folder, backend="onnx", make_default=False), log=lambda _: None)
    pipeline = Pipeline()
    pipeline.add_component("ranker", CrossEncoderRanker(model=folder, backend="onnx", top_k=16, fusion_alpha=None))
    path = tmp_path / "ranker.yml"
    path.write_text(pipeline.dumps())
    assert "backend: onnx" in path.read_text()
    done = fresh_python(RUN_RANKER, str(path), json.dumps(PASSAGES), QUERIES[0])
    assert done.returncode == 0, done.stderr[-2000:]
    backend_line, ranked_line = done.stdout.strip().splitlines()[-2:]
    assert json.loads(backend_line) == ["onnx", "onnx/model.onnx"]
    torch_run = ranked_ids_and_scores(CrossEncoderRanker(model=folder, top_k=16, fusion_alpha=None, backend="torch"))
    ranked = json.loads(ranked_line)
    assert [doc_id for doc_id, _ in ranked] == [doc_id for doc_id, _ in torch_run] and len(ranked) == 16
    np.testing.assert_allclose([s for _, s in ranked], [s for _, s in torch_run], atol=1e-5)


def test_auto_keeps_a_passing_default_and_falls_back_to_torch_when_it_cannot_serve(folder):
    export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=0), log=lambda _: None)
    # Another export of the same file, not made the default, leaves the passing default in place.
    export_model(ExportConfig(model_dir=folder, backend="onnx", make_default=False), log=lambda _: None)
    auto = CrossEncoderRanker(model=folder)
    auto.warm_up()
    assert auto.effective_backend == ("onnx", "onnx/model.onnx")
    # The default export's file is gone (a folder copied without onnx/): auto ranks on torch; asked for, it is an
    # error.
    Path(folder, "onnx", "model.onnx").unlink()
    fallback = CrossEncoderRanker(model=folder)
    fallback.warm_up()
    assert fallback.effective_backend == ("torch", None)
    with pytest.raises(FileNotFoundError, match="No onnx export"):
        CrossEncoderRanker(model=folder, backend="onnx").warm_up()
    with pytest.raises(ValueError, match="is a hub id"):
        CrossEncoderRanker(model="org/some-reranker", backend="onnx")


def test_weights_changed_after_the_export_put_auto_back_on_torch_in_the_same_process(folder, caplog):
    export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=0), log=lambda _: None)
    auto = CrossEncoderRanker(model=folder)
    auto.warm_up()
    assert auto.effective_backend == ("onnx", "onnx/model.onnx")
    # Trained further in place: same file, same size, other weights. The fingerprint is not reused from before.
    weights = Path(folder, "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8) if data[-8:] != bytes(8) else b"\x01" * 8
    weights.write_bytes(bytes(data))
    retrained = CrossEncoderRanker(model=folder)
    retrained.warm_up()
    assert retrained.effective_backend == ("torch", None)
    assert "was made from other weights" in caplog.text


def test_an_export_that_fails_its_quality_check_exits_1(folder, capsys):
    assert main(["export", folder, "--backend", "onnx", "--no-default"]) == 0
    # A folder whose check was tampered with: each validation query's relevant document is now the one the model
    # scores lowest, and the fp32 reference scores kept in the folder rank it first. The export, unchanged, falls
    # short of that reference.
    candidates, cache = Path(folder) / VALIDATION_CANDIDATES_FILE, Path(folder) / REFERENCE_SCORES_FILE
    records, stored = gate_records(load_candidates(candidates)), json.loads(cache.read_text())
    scores, start, ideal = stored["scores"], 0, []
    for record in records:
        own = scores[start:start + len(record["candidates"])]
        start += len(own)
        worst = record["candidates"][int(np.argmin(own))]["id"]
        record["positive_ids"] = [worst]
        ideal += [float(c["id"] == worst) for c in record["candidates"]]
    candidates.write_text("".join(json.dumps(r) + "\n" for r in records))
    cache.write_text(json.dumps({**stored, "scores": ideal}))
    capsys.readouterr()
    assert main(["export", folder, "--backend", "onnx", "--max-loss", "0"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("haystack-hardneg")]
    assert len(errors) == 1 and "onnx/model.onnx failed its quality check" in errors[0], errors
    settings = json.loads((Path(folder) / "hardneg.json").read_text())
    assert not settings.get("backend") and settings["exports"]["onnx/model.onnx"]["gate"]["passed"] is False


def test_the_export_command(folder, tmp_path, capsys):
    assert main(["export", folder, "--backend", "onnx", "--no-default"]) == 0
    out = capsys.readouterr().out
    assert "onnx export: onnx/model.onnx" in out and "nDCG@10 on 12 validation queries" in out
    assert main(["export", str(tmp_path / "nowhere"), "--backend", "onnx"]) == 2
    assert "is not a cross-encoder folder" in capsys.readouterr().err
    assert main(["export", folder, "--backend", "openvino", "--optimize", "O2"]) == 2
    assert "optimize applies to the onnx backend only" in capsys.readouterr().err


def test_the_export_is_timed_against_torch_on_this_cpu_and_is_the_default_only_when_faster(folder):
    record = export_model(ExportConfig(model_dir=folder, backend="onnx", speed_queries=6), log=lambda _: None)
    speed = record["speed"]
    assert speed["cpu"] == cpu() and speed["batches"] == 6 and speed["pairs_per_batch"] == 8
    assert set(speed["median_ms"]) == {"torch", "export"} and all(ms > 0 for ms in speed["median_ms"].values())
    assert speed["faster"] == (speed["speedup"]["export"] >= 1.05)
    assert record["default"] == speed["faster"]
    card = open(f"{folder}/README.md").read()
    assert f"Speed on this CPU ({cpu()['model']}" in card
    stored = read_ranker_settings(folder)
    assert stored["exports"]["onnx/model.onnx"]["speed"] == speed
    if record["default"]:
        assert stored["backend"]["cpu"] == cpu()


def test_an_export_that_passes_on_quality_but_is_not_fast_enough_is_kept_but_not_the_default(folder):
    messages = []
    record = export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=1000, speed_queries=3),
                          log=messages.append)
    assert record["gate"]["passed"] and not record["speed"]["faster"] and not record["default"]
    assert read_default_backend(folder)[:2] == ("torch", None)
    assert "NOT FASTER THAN TORCH HERE" in open(f"{folder}/README.md").read()
    assert any(m.startswith("Timing torch fp32 and the export side by side on 3 queries") for m in messages)
    # Speed not required: no timing, made the default on quality alone, for the CPU it was made on.
    record = export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=0), log=lambda _: None)
    assert record["speed"] is None and record["default"]
    assert read_ranker_settings(folder)["backend"]["cpu"] == cpu()


def _stored_on_another_cpu(folder: str, **changes) -> None:
    settings = read_ranker_settings(folder)
    settings["backend"].update(cpu={"model": "Some Other CPU", "cores": 64, "flags": ["avx2", "avx512_vnni"]},
                               **changes)
    Path(folder, "hardneg.json").write_text(json.dumps(settings))


def test_auto_times_again_on_another_cpu_and_says_why_it_overrides_the_default(folder, tmp_path, monkeypatch,
                                                                               caplog):
    monkeypatch.setenv("HARDNEG_SERVING_CACHE", str(tmp_path / "serving"))
    export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=0), log=lambda _: None)
    # Made on this CPU: served as recorded, nothing timed.
    same = CrossEncoderRanker(model=folder)
    same.warm_up()
    assert same.effective_backend == ("onnx", "onnx/model.onnx") and not (tmp_path / "serving").exists()
    # Recorded on another CPU, and asking more of the export than any CPU gives: torch serves, at WARNING.
    _stored_on_another_cpu(folder, min_speedup=1000)
    with caplog.at_level("INFO"):
        ranker = CrossEncoderRanker(model=folder)
        ranker.warm_up()
    assert ranker.effective_backend == ("torch", None)
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "was chosen on another CPU (Some Other CPU (avx2, avx512_vnni))" in warning
    assert f"on this one ({cpu()['model']}" in warning and "serving on torch instead" in warning
    choice = json.loads(next((tmp_path / "serving").glob("*.json")).read_text())
    assert choice["backend"] == "torch" and set(choice["speed"]["median_ms"]) == {"torch", "onnx/model.onnx"}
    assert choice["speed"]["batches"] == 6 and choice["speed"]["cpu"] == cpu()
    documents = [Document(id=f"d{i}", content=p) for i, p in enumerate(PASSAGES)]
    assert len(ranker.run(query=QUERIES[0], documents=documents)["documents"]) == 10
    # The next process on this machine reads the choice instead of timing again.
    caplog.clear()
    with caplog.at_level("INFO"):
        again = CrossEncoderRanker(model=folder)
        again.warm_up()
    assert again.effective_backend == ("torch", None)
    assert any("as timed here before" in r.getMessage() for r in caplog.records)


def test_auto_on_another_cpu_serves_whichever_is_fastest_here(folder, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HARDNEG_SERVING_CACHE", str(tmp_path / "serving"))
    export_model(ExportConfig(model_dir=folder, backend="onnx", optimize="O2", min_speedup=0, make_default=False),
                 log=lambda _: None)
    export_model(ExportConfig(model_dir=folder, backend="onnx", min_speedup=0), log=lambda _: None)
    _stored_on_another_cpu(folder, min_speedup=1.0)
    with caplog.at_level("INFO"):
        ranker = CrossEncoderRanker(model=folder)
        ranker.warm_up()
    choice = json.loads(next((tmp_path / "serving").glob("*.json")).read_text())
    speedup = choice["speed"]["speedup"]
    assert set(speedup) == {"torch", "onnx/model.onnx", "onnx/model_O2.onnx"}
    best = max(speedup, key=speedup.get)
    expected = ("torch", None) if best == "torch" or speedup[best] < 1.0 else ("onnx", best)
    assert ranker.effective_backend == expected
    assert any("serving on" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)
    overrides = [r for r in caplog.records if r.levelname == "WARNING"]
    assert bool(overrides) == (expected[1] != "onnx/model.onnx")


def test_bfloat16_is_refused_on_a_cpu_without_bfloat16_instructions(folder, caplog):
    if not missing_bf16():
        pytest.skip("this CPU computes bfloat16 in hardware")
    with caplog.at_level("WARNING"):
        ranker = CrossEncoderRanker(model=folder, backend="torch", model_kwargs={"dtype": "bfloat16"})
        ranker.warm_up()
    assert ranker._cross_encoder.model.dtype == torch.float32
    message = caplog.records[-1].getMessage()
    assert "model_kwargs dtype=bfloat16 is refused on this CPU" in message and missing_bf16() in message

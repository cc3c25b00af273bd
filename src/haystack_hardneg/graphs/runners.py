"""Running an exported graph: a feed of named arrays in, the first output out (ONNX Runtime or OpenVINO)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from haystack_hardneg.extras import require


def onnx_runner(path: Path, options: dict[str, Any]):
    ort = require("onnxruntime", "The onnx backend")
    session_options = ort.SessionOptions()
    if options.get("threads"):
        session_options.intra_op_num_threads = int(options["threads"])
    # The CPU unless asked otherwise: the first available provider of a GPU build may lack its libraries here.
    providers = [options["provider"], "CPUExecutionProvider"] if options.get("provider") else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), session_options, providers=providers)
    names = [i.name for i in session.get_inputs()]
    return names, lambda feed: session.run(None, feed)[0]


def openvino_runner(path: Path, options: dict[str, Any]):
    ov = require("openvino", "The openvino backend")
    # f32 unless asked otherwise: on a CPU with bfloat16 instructions (AVX-512 BF16, AMX) OpenVINO's CPU plugin
    # otherwise computes in bf16, so an fp32 export would not give the vectors or scores its checks compared.
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", **(options.get("ov_config") or {})}
    if options.get("threads"):
        config["INFERENCE_NUM_THREADS"] = int(options["threads"])
    compiled = ov.Core().compile_model(str(path), options.get("device", "CPU"), config)
    names = [i.get_any_name() for i in compiled.inputs]
    return names, lambda feed: compiled(feed)[0]

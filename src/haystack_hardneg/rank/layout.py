"""Where exported graphs go in a cross-encoder folder, and the scoring head that runs after them.

Files are named as sentence-transformers names them (``onnx/model*.onnx``, ``openvino/openvino_model*.xml``), so
the folder also loads with ``CrossEncoder(folder, backend=..., model_kwargs={"file_name": ...})`` wherever optimum
can be installed. As there, only the transformer body is exported: for a model saved as sentence-transformers
modules (Transformer, Pooling, Dense) the pooling and the one-logit layer are applied to the body's token
embeddings afterwards, which costs microseconds; a sequence-classification model's graph gives the logit itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from haystack_hardneg.files import confined_path
from haystack_hardneg.train.heads import saved_pooling

Backend = Literal["onnx", "openvino"]
BACKENDS: tuple[str, ...] = ("onnx", "openvino")
OPTIMIZATIONS: tuple[str, ...] = ("O1", "O2", "O3", "O4")
QUANTIZATIONS: tuple[str, ...] = ("int8",)


def export_file_name(backend: str, optimize: str | None = None, quantize: str | None = None) -> str:
    """The file an export writes, relative to the model folder (sentence-transformers' names)."""
    if backend == "onnx":
        suffix = "".join(f"_{part}" for part in (optimize, "qint8" if quantize else None) if part)
        return f"onnx/model{suffix}.onnx"
    if backend == "openvino":
        return "openvino/openvino_model_qint8_quantized.xml" if quantize else "openvino/openvino_model.xml"
    raise ValueError(f"Unknown backend {backend!r}; choose one of {list(BACKENDS)}.")


def _read_json(path: Path) -> dict | list:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ScoringHead:
    """What turns the exported body's output into one score per pair: a pooling of the token embeddings and a
    linear layer (``pooling`` set), or nothing (the body gives ``logits``)."""

    output: str  # the body's output: "last_hidden_state" or "logits"
    pooling: str | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def __call__(self, body_output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self.pooling is None:
            return np.asarray(body_output, dtype=np.float32).reshape(len(body_output), -1)[:, 0]
        if self.pooling == "cls":
            pooled = body_output[:, 0]
        else:  # mean over the real tokens, as sentence-transformers' Pooling computes it
            mask = attention_mask[..., None].astype(np.float32)
            pooled = (body_output * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return (pooled @ self.weight.T + self.bias)[:, 0]


class UnsupportedModelError(ValueError):
    """A model whose modules the exported backends cannot run (it still runs on torch)."""


def _load_dense(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.numpy import load_file

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise UnsupportedModelError(f"{folder} has no model.safetensors for its linear layer.")
    tensors = load_file(str(weights))
    weight = tensors["linear.weight"].astype(np.float32)
    bias = tensors.get("linear.bias", np.zeros(weight.shape[0], dtype=np.float32)).astype(np.float32)
    return weight, bias


def read_scoring_head(model_dir: str | Path) -> ScoringHead:
    """The scoring head of a cross-encoder folder; :class:`UnsupportedModelError` for module stacks other than
    [Transformer] (sequence classification) and [Transformer, Pooling (mean/cls), Dense (one output, no
    activation)], the two that ``TripletTrainer`` and hub re-rankers save."""

    folder = Path(model_dir)
    modules_file = folder / "modules.json"
    modules = _read_json(modules_file) if modules_file.is_file() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds in ([], ["Transformer"]):
        return ScoringHead(output="logits")
    if kinds != ["Transformer", "Pooling", "Dense"]:
        raise UnsupportedModelError(f"{folder}: modules {kinds} cannot run on an exported backend (supported: a "
                                    f"sequence-classification model, or Transformer + Pooling + Dense); use "
                                    f"backend='torch'.")
    pooling = saved_pooling(str(folder))
    dense_dir = confined_path(folder, modules[2]["path"], named_in=modules_file)
    dense = _read_json(dense_dir / "config.json")
    if pooling is None or dense.get("out_features") != 1 or dense.get("use_residual") or not str(
            dense.get("activation_function", "")).endswith("Identity"):
        raise UnsupportedModelError(f"{folder}: only mean or cls pooling and a one-output Dense layer without "
                                    f"activation run on an exported backend; use backend='torch'.")
    weight, bias = _load_dense(dense_dir)
    return ScoringHead(output="last_hidden_state", pooling=pooling, weight=weight, bias=bias)

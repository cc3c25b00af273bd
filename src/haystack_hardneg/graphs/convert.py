"""The conversions: torch -> ONNX (torch's dynamo exporter), ONNX Runtime's graph optimisations and dynamic int8
quantisation, ONNX -> OpenVINO and OpenVINO's static int8 quantisation (NNCF), each a file in, a file out.

The levels follow optimum's: O1 basic graph optimisations; O2 adds the transformer fusions (layer norm, GELU,
attention where recognised); O3 adds the approximate GELU; O4 adds fp16, which needs a GPU.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from haystack_hardneg.extras import require

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@contextmanager
def _replacing(target: Path, companions: tuple[str, ...] = ()):
    """A temporary path beside ``target`` to write to; moved over ``target`` (and its ``companions``, files with
    the same stem and these suffixes) only when the block succeeds, so a failed export leaves the folder as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        yield scratch / target.name
        # The graph last: a reader that finds the new graph finds its weights beside it.
        for suffix in companions:
            os.replace(scratch / (target.stem + suffix), target.with_suffix(suffix))
        os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _body(model):
    """The transformer body of a CrossEncoder as a torch module of its tokenizer's tensors, the input names it
    takes and the name of its output (token embeddings or logits)."""
    import inspect

    import torch

    auto_model = model[0].auto_model.eval()
    parameters = inspect.signature(auto_model.forward).parameters
    given = set(model.tokenizer.model_input_names)
    names = [n for n in INPUT_NAMES if n in parameters and n in given and (
        n != "token_type_ids" or getattr(auto_model.config, "type_vocab_size", 0) > 1)]
    output = "logits" if "ForSequenceClassification" in type(auto_model).__name__ else "last_hidden_state"

    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = auto_model

        def forward(self, *inputs):
            return getattr(self.inner(**dict(zip(names, inputs))), output)

    return Body(), names, output


def export_onnx(model, target: Path) -> Path:
    """The CrossEncoder's body as one ONNX file (weights inside), with dynamic batch and sequence axes."""
    import torch

    require("onnxscript", "Exporting to ONNX")
    body, names, output = _body(model)
    example = model.tokenizer([("query", "a short passage")] * 2, padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    # The exporter narrates its steps on stdout and warns about torchvision, which a text model does not use.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        program = torch.onnx.export(body, tuple(example[n] for n in names), None, input_names=names,
                                    output_names=[output], dynamo=True, verbose=False,
                                    dynamic_shapes={"inputs": tuple({0: batch, 1: sequence} for _ in names)})
    with _replacing(target) as scratch:
        program.save(str(scratch), external_data=False)
    return target


def optimize_onnx(source: Path, target: Path, level: str, model_type: str = "bert") -> Path:
    """ONNX Runtime's transformer optimiser at an optimum-style level (O1..O4)."""
    require("onnxruntime", "Optimising an ONNX export")
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if level == "O4":
        raise ValueError("O4 adds fp16, which only pays on a GPU; use O3 on a CPU.")
    options = FusionOptions(model_type)
    options.enable_gelu_approximation = level == "O3"
    optimized = optimize_model(str(source), model_type=model_type, num_heads=0, hidden_size=0,
                               opt_level=1 if level == "O1" else 2, optimization_options=options,
                               only_onnxruntime=level == "O1", use_gpu=False)
    with _replacing(target) as scratch:
        optimized.save_model_to_file(str(scratch))
    return target


def quantize_onnx(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation (int8 weights, activations quantised per batch at run time). Weights get one scale
    per output channel: with one scale per matrix, all-MiniLM-L6-v2's vectors fell to cosine 0.95 of fp32's on
    SciFact abstracts, per channel they stay at 0.99, at the same speed."""
    require("onnxruntime", "Quantising an ONNX export")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _replacing(target) as scratch:
        quantize_dynamic(str(source), str(scratch), weight_type=QuantType.QInt8, per_channel=True)
    return target


def openvino_from_onnx(source: Path, target: Path) -> Path:
    """The ONNX graph as an OpenVINO model (``.xml`` + ``.bin``)."""
    ov = require("openvino", "Exporting to OpenVINO")
    model = ov.convert_model(str(source))
    with _replacing(target, companions=(".bin",)) as scratch:
        ov.save_model(model, str(scratch), compress_to_fp16=False)
    return target


def quantize_openvino(source: Path, target: Path, tokenizer, samples: list[tuple[str, ...]], max_length: int) -> Path:
    """Static int8 quantisation with NNCF, its activation ranges calibrated on ``samples`` (a cross-encoder's
    (query, passage) pairs, or a bi-encoder's single texts) tokenised one at a time (unpadded: the activations NNCF
    sees are those of real text)."""
    ov = require("openvino", "Quantising an OpenVINO export")
    nncf = require("nncf", "Quantising an OpenVINO export")
    model = ov.Core().read_model(str(source))
    names = [i.get_any_name() for i in model.inputs]
    feeds = []
    for sample in samples:
        encoded = tokenizer(*([text] for text in sample), truncation="longest_first", max_length=max_length,
                            return_tensors="np")
        feeds.append({name: encoded[name].astype(np.int64) for name in names})
    quantized = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds), model_type=nncf.ModelType.TRANSFORMER)
    with _replacing(target, companions=(".bin",)) as scratch:
        ov.save_model(quantized, str(scratch), compress_to_fp16=False)
    return target

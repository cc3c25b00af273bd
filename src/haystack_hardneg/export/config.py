"""How to export: every export option, declared once (``haystack-hardneg export``, ``train --export``,
``export_model`` and an experiment's ``rerank.backend`` read this class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from haystack_hardneg.export.gate import DEFAULT_MAX_LOSS
from haystack_hardneg.options import Options, option
from haystack_hardneg.rank.layout import BACKENDS, OPTIMIZATIONS, QUANTIZATIONS, Backend
from haystack_hardneg.rank.speed import DEFAULT_MIN_SPEEDUP


@dataclass
class ExportConfig(Options):
    """Export a cross-encoder folder to a faster backend, checked against its fp32 scores."""

    model_dir: str = option(cli=False, help="the cross-encoder folder (e.g. OUT/model of `train`)")
    backend: Backend = option("openvino", choices=BACKENDS, help=(
        "onnx (ONNX Runtime) or openvino; OpenVINO was the faster of the two on the CPUs measured"))
    optimize: Literal["O1", "O2", "O3", "O4"] | None = option(None, choices=(*OPTIMIZATIONS, None), help=(
        "ONNX Runtime graph optimisation level (onnx only): O1 basic, O2 fusions, O3 approximate GELU, O4 fp16 "
        "(GPU)"))
    quantize: Literal["int8"] | None = option(None, choices=(*QUANTIZATIONS, None), help=(
        "int8: dynamic quantisation (onnx) or static quantisation (openvino) calibrated on the training pairs the "
        "model keeps (else on half of its validation candidates)"))
    max_loss: float = option(DEFAULT_MAX_LOSS, help=(
        "largest drop of nDCG@10 against the fp32 model, on the validation candidates, for the export to become "
        "the folder's default backend"))
    calibration_pairs: int = option(300, help="(query, passage) pairs for static int8 calibration")
    candidates: str | None = option(None, help=(
        "candidates.jsonl to check on (and to calibrate on, for a model that keeps no training pairs); none: the "
        "validation candidates the training kept in the model folder"))
    min_speedup: float = option(DEFAULT_MIN_SPEEDUP, help=(
        "how many times faster than torch fp32 on this machine the export must be to become the default backend, "
        "timed side by side on the validation candidates (0: speed not required, not timed)"))
    speed_queries: int = option(24, help=(
        "validation queries (their top 20 candidates each) to time torch fp32 and the export on"))
    make_default: bool = option(True, negative_flag="--no-default", help=(
        "make a passing export the backend CrossEncoderRanker(backend='auto') loads"))

    def validate(self) -> None:
        if self.optimize is not None and self.backend != "onnx":
            raise ValueError("optimize applies to the onnx backend only (OpenVINO optimises when it compiles).")
        if self.optimize == "O4":
            raise ValueError("optimize O4 adds fp16, which only pays on a GPU; use O3 on a CPU.")
        if not 0 <= self.max_loss < 1 or self.calibration_pairs < 1:
            raise ValueError("max_loss must be in [0, 1) and calibration_pairs >= 1.")
        if self.min_speedup < 0 or self.speed_queries < 2:
            raise ValueError("min_speedup must be >= 0 and speed_queries >= 2 (one warms up, the rest are timed).")

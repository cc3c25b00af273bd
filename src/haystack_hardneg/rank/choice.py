"""What a CrossEncoderRanker is asked to run: its init parameters checked when it is built, and the backend (and
export file) it serves on, resolved at warm-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from haystack import logging

from haystack_hardneg.embed.encoder import check_model_source, looks_like_path
from haystack_hardneg.rank.layout import BACKENDS, weights_fingerprint
from haystack_hardneg.rank.passages import AGGREGATIONS
from haystack_hardneg.scoring.settings import read_default_backend

logger = logging.getLogger(__name__)

RANKER_BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "openvino")
# model_kwargs that choose and configure an export (as in sentence-transformers), not the torch model.
EXPORT_ONLY_KWARGS = ("file_name", "provider", "threads", "ov_config", "device")


def check_settings(model: str | Path, top_k: int, aggregation: str, passage_words: int | None,
                   passage_overlap: int, backend: str, fusion_alpha: Any) -> None:
    """The init parameters that cannot work, refused when the component is built (before any model loads)."""
    check_model_source(str(model))
    if top_k <= 0:
        raise ValueError(f"top_k must be > 0, got {top_k}.")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}.")
    if passage_words is not None and not 0 <= passage_overlap < passage_words:
        raise ValueError("passage_overlap must be >= 0 and smaller than passage_words.")
    if backend not in RANKER_BACKENDS:
        raise ValueError(f"backend must be one of {RANKER_BACKENDS}, got {backend!r}.")
    if backend in BACKENDS and not looks_like_path(str(model)):
        raise ValueError(f"backend={backend!r} runs a local model folder's export; {model!r} is a hub id: save "
                         f"it to a folder, export it with `haystack-hardneg export FOLDER --backend {backend}` "
                         f"and give the folder.")
    if fusion_alpha is not None and fusion_alpha != "auto" and not 0.0 <= float(fusion_alpha) <= 1.0:
        raise ValueError(f"fusion_alpha must be in [0, 1], 'auto' or None, got {fusion_alpha!r}.")


def resolve_backend(model: str, backend: str, model_kwargs: dict[str, Any] | None
                    ) -> tuple[str, str | None]:
    """(backend, export file): as given, or for ``auto`` the file's backend (a ``file_name`` given), the
    folder's default export when it was made from the weights the folder holds now, else torch."""
    file_name = (model_kwargs or {}).get("file_name")
    if backend != "auto":
        return backend, file_name
    if not looks_like_path(model):
        return "torch", None
    if file_name:
        return ("onnx" if file_name.endswith(".onnx") else "openvino"), file_name
    default, default_file, weights = read_default_backend(model)
    if default != "torch" and weights != weights_fingerprint(model):
        logger.warning("The default {backend} export of {path} was made from other weights; ranking on torch. "
                       "Export again to use it.", backend=default, path=model)
        return "torch", None
    return default, default_file

"""What a CrossEncoderRanker is asked to run: its init parameters checked when it is built, and the backend (and
export file) it serves on, resolved at warm-up."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from haystack import logging

from haystack_hardneg.defaults import serving_cache_dir
from haystack_hardneg.embed.encoder import check_model_source, looks_like_path
from haystack_hardneg.machine import cpu, describe_cpu, missing_bf16, same_cpu_class
from haystack_hardneg.rank.layout import BACKENDS
from haystack_hardneg.rank.passages import AGGREGATIONS
from haystack_hardneg.scoring.settings import (
    VALIDATION_CANDIDATES_FILE,
    read_default_backend,
    read_ranker_settings,
    weights_fingerprint,
)

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


def measured_elsewhere(model: str) -> dict[str, Any] | None:
    """The folder's default export record when its speed was measured on a CPU of another class than this one
    (or not recorded at all), else None: its speed-up over torch says little here."""
    default = read_ranker_settings(model).get("backend") or {}
    if not default or same_cpu_class(default.get("cpu"), cpu()):
        return None
    return default


def safe_exports(model: str) -> list[tuple[str, str]]:
    """(backend, file) of every export of the folder that passed its quality gate for the weights it holds now
    and whose file is there: the choices that score as the fp32 model does."""
    weights = weights_fingerprint(model)
    found = []
    for file_name, record in (read_ranker_settings(model).get("exports") or {}).items():
        gate = record.get("gate") or {}
        if gate.get("passed") and record.get("weights") == weights and (Path(model) / file_name).is_file():
            found.append((record["backend"], file_name))
    return found


def probe_records(model: str) -> list[dict[str, Any]]:
    """The validation candidates kept with the model (what its exports were checked and timed on), if any."""
    from haystack_hardneg.mine.candidates import load_candidates

    path = Path(model).expanduser() / VALIDATION_CANDIDATES_FILE
    return load_candidates(path) if path.is_file() else []


def fastest(report: dict[str, Any], min_speedup: float) -> str:
    """The fastest system of a speed report that beats torch by ``min_speedup``; torch when none does."""
    speedups = {name: s for name, s in report["speedup"].items() if name != "torch" and s >= min_speedup}
    return max(speedups, key=speedups.get) if speedups else "torch"


def serving_cache_file(model: str) -> Path:
    """Where the choice made on this CPU for the folder's weights is kept (``$HARDNEG_SERVING_CACHE`` or the
    user's cache folder), so that every process on this machine does not time it again."""
    identity = json.dumps([str(Path(model).expanduser().resolve()), weights_fingerprint(model), cpu()],
                          sort_keys=True)
    name = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return Path(serving_cache_dir()).expanduser() / f"{name}.json"


# Queries timed when a ranker re-times its backends at warm-up (after one that warms up): a few seconds for a
# MiniLM on two cores, once per CPU and weights.
RETIME_QUERIES = 6


def read_serving_choice(path: Path) -> dict[str, Any] | None:
    try:
        choice = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return choice if isinstance(choice, dict) and "backend" in choice and "file_name" in choice else None


def write_serving_choice(path: Path, choice: dict[str, Any]) -> None:
    """Kept for the next process on this machine; a cache that cannot be written (a read-only home) only means
    timing again next time."""
    from haystack_hardneg.files import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(choice, indent=2))
    except OSError as error:
        logger.debug("Could not keep the serving choice at {path}: {error}", path=path, error=error)


def announce_choice(model: str, default: dict[str, Any], choice: dict[str, Any]) -> None:
    """INFO: what serves and the timings it was chosen by; WARNING when that is not the folder's default."""
    here, there = describe_cpu(cpu()), describe_cpu(default["cpu"]) if default.get("cpu") else "a CPU not recorded"
    speed = choice.get("speed")
    timings = "; ".join(f"{name} {ms:.0f} ms ({speed['speedup'][name]:.2f}x)"
                        for name, ms in speed["median_ms"].items()) if speed else choice.get("reason", "")
    served = choice["file_name"] or "torch"
    logger.info("CrossEncoderRanker({model}) on this CPU ({here}): {timings}; serving on {served}.", model=model,
                here=here, timings=timings, served=served)
    if choice["file_name"] != default.get("file_name"):
        ratio = speed["speedup"].get(default.get("file_name")) if speed else None
        measured = f"it runs at {ratio:.2f}x torch fp32" if ratio is not None else "it was not timed"
        logger.warning("The default backend of {model} ({file}) was chosen on another CPU ({there}); on this one "
                       "({here}) {measured}: serving on {served} instead. Run `haystack-hardneg export` on this "
                       "machine to make its own choice the folder's default.", model=model,
                       file=default.get("file_name"), there=there, here=here, measured=measured, served=served)


def unsuited_cpu_dtype(model_kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """(the model_kwargs key, the instructions missing) when it asks for bfloat16 on a CPU that has no bfloat16
    instructions; else None."""
    for key in ("dtype", "torch_dtype"):
        if str(model_kwargs.get(key, "")).endswith("bfloat16") and (lacking := missing_bf16()):
            return key, lacking
    return None

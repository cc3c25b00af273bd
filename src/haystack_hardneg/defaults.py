"""Where models and the embedding cache are looked for when nothing else is said (CLI and experiment alike)."""

from __future__ import annotations

import os
from pathlib import Path

# Local model folders (``$HARDNEG_MODELS`` overrides it): every model is a hub id or a folder, and a machine
# without hub access keeps its models here.
DEFAULT_MODELS_DIR = "~/.cache/hardneg-models"
DEFAULT_CACHE_DIR = "~/.cache/haystack-hardneg/embeddings"
# A ranker's choice of backend measured on this CPU (``$HARDNEG_SERVING_CACHE`` overrides it).
DEFAULT_SERVING_CACHE_DIR = "~/.cache/haystack-hardneg/serving"
# A teacher's scores of triplet rows, shared by every student distilled from it (``$HARDNEG_TEACHER_CACHE``).
DEFAULT_TEACHER_CACHE_DIR = "~/.cache/haystack-hardneg/teacher-scores"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
# Labels, queries and qrels are held in memory whole, at several times their size on disk: a file above this is
# refused before it is read (``$HARDNEG_MAX_LABEL_BYTES`` raises it). 256 MiB is millions of judgements.
DEFAULT_MAX_LABEL_BYTES = 256 * 1024 * 1024


def models_dir() -> str:
    return os.environ.get("HARDNEG_MODELS", DEFAULT_MODELS_DIR)


def serving_cache_dir() -> str:
    return os.environ.get("HARDNEG_SERVING_CACHE", DEFAULT_SERVING_CACHE_DIR)


def teacher_cache_dir() -> str:
    return os.environ.get("HARDNEG_TEACHER_CACHE", DEFAULT_TEACHER_CACHE_DIR)


def max_label_bytes() -> int:
    value = os.environ.get("HARDNEG_MAX_LABEL_BYTES", "").strip()
    if not value:
        return DEFAULT_MAX_LABEL_BYTES
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"HARDNEG_MAX_LABEL_BYTES must be a number of bytes, got {value!r}.") from None


def default_model() -> str:
    """all-MiniLM-L6-v2 from the local models folder when it is there, else its hub id."""
    local = Path(models_dir()).expanduser() / DEFAULT_MODEL_NAME
    return str(local) if local.is_dir() else f"sentence-transformers/{DEFAULT_MODEL_NAME}"


def expand(value: str) -> str:
    """``~`` and ``$VARS`` expanded; ``$HARDNEG_MODELS`` defaults to the local models folder."""
    models = models_dir()
    value = value.replace("${HARDNEG_MODELS}", models).replace("$HARDNEG_MODELS", models)
    return os.path.expanduser(os.path.expandvars(value))

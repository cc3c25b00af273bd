"""Where models and the embedding cache are looked for when nothing else is said (CLI and experiment alike)."""

from __future__ import annotations

import os
from pathlib import Path

# Local model folders (``$HARDNEG_MODELS`` overrides it): every model is a hub id or a folder, and a machine
# without hub access keeps its models here.
DEFAULT_MODELS_DIR = "~/.cache/hardneg-models"
DEFAULT_CACHE_DIR = "~/.cache/haystack-hardneg/embeddings"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def models_dir() -> str:
    return os.environ.get("HARDNEG_MODELS", DEFAULT_MODELS_DIR)


def default_model() -> str:
    """all-MiniLM-L6-v2 from the local models folder when it is there, else its hub id."""
    local = Path(models_dir()).expanduser() / DEFAULT_MODEL_NAME
    return str(local) if local.is_dir() else f"sentence-transformers/{DEFAULT_MODEL_NAME}"


def expand(value: str) -> str:
    """``~`` and ``$VARS`` expanded; ``$HARDNEG_MODELS`` defaults to the local models folder."""
    models = models_dir()
    value = value.replace("${HARDNEG_MODELS}", models).replace("$HARDNEG_MODELS", models)
    return os.path.expanduser(os.path.expandvars(value))

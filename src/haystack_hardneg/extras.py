"""Optional capabilities live in pip extras, so an app that only embeds, indexes, mines and ranks installs the core.

``require(module, extra)`` imports an optional module or raises :class:`MissingExtraError` with the pip command
that adds it. The extras (see ``pyproject.toml``): ``bm25`` (the lexical member), ``train`` (fine-tuning),
``experiment`` (metrics, significance tests, charts; includes both), ``onnx`` and ``openvino`` (exported
backends for fast serving), ``all``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# Which extra brings each optional top-level module.
EXTRA_OF = {
    "bm25s": "bm25",
    "Stemmer": "bm25",
    "datasets": "train",
    "accelerate": "train",
    "pyarrow": "train",
    "ranx": "evaluate",
    "matplotlib": "experiment",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "openvino": "openvino",
    "nncf": "openvino",
}


# Environment an optional package is imported under, unless the user set it: bm25s imports JAX where JAX is installed,
# and JAX by default preallocates most of a GPU's memory in every process that imports it, which starves a training
# beside it; the lexical member computes nothing with JAX.
ENVIRONMENT_BEFORE_IMPORT = {"bm25s": {"JAX_PLATFORMS": "cpu"}}


class MissingExtraError(ImportError):
    """An optional package is not installed: the message names the extra and the pip command."""


def install_hint(extra: str) -> str:
    return f'pip install "haystack-hardneg[{extra}]"'


def require(module: str, purpose: str) -> ModuleType:
    """``module`` imported, or a :class:`MissingExtraError` saying that ``purpose`` needs its extra."""
    for name, value in ENVIRONMENT_BEFORE_IMPORT.get(module.split(".")[0], {}).items():
        os.environ.setdefault(name, value)
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        if error.name is not None and error.name.split(".")[0] != top:
            raise  # the package is there but broken: its own error says more
        extra = EXTRA_OF.get(top, "all")
        raise MissingExtraError(f"{purpose} needs the optional package '{top}', which is not installed: "
                                f"{install_hint(extra)} adds it.") from error


def require_all(modules: list[str], purpose: str) -> None:
    """Each of ``modules`` importable, checked before long work starts; else the first missing one is named."""
    for module in modules:
        require(module, purpose)


EXPERIMENT_MODULES = ["ranx", "matplotlib", "bm25s", "datasets", "accelerate"]

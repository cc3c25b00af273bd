"""What a run was made with: package versions and the machine, written beside its results."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from haystack_hardneg.machine import cpu

PACKAGES = ("haystack-hardneg", "haystack-ai", "sentence-transformers", "transformers", "torch", "scikit-learn",
            "qdrant-client", "qdrant-haystack", "ranx", "bm25s", "trafilatura", "numpy")


def versions() -> dict[str, str | None]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu": cpu(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

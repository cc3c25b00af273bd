from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiny_models import build_tiny_sentence_transformer

FIXTURES = Path(__file__).parent / "fixtures"

# One numba cache for the suite and the commands it starts (the experiment CLI would otherwise compile ranx into
# each run folder), apart from the installed package's, which another process may be writing.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "numba"))
# Haystack's usage telemetry would try the network from every test that builds a pipeline.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
# Teacher scores of the tests' tiny random teachers stay out of the user's cache.
os.environ.setdefault("HARDNEG_TEACHER_CACHE",
                      str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "teacher-scores"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny random 32-d sentence-transformers model folder."""
    return str(build_tiny_sentence_transformer(tmp_path_factory.mktemp("models") / "tiny-a", seed=0))


@pytest.fixture(scope="session")
def tiny_model_other_weights(tmp_path_factory) -> str:
    """tiny_model's architecture and dimension (32-d) with other random weights: another vector space."""
    return str(build_tiny_sentence_transformer(tmp_path_factory.mktemp("models") / "tiny-a2", seed=7))


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory) -> str:
    """A second, different tiny model (48-d) for two-member ensembles of unequal dimensions."""
    return str(build_tiny_sentence_transformer(tmp_path_factory.mktemp("models") / "tiny-b", seed=1, hidden=48))


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def trainable_model(tmp_path_factory) -> str:
    """A tiny random model with BERT's usual initialisation, as a base for training tests."""
    folder = tmp_path_factory.mktemp("models") / "tiny-trainable"
    return str(build_tiny_sentence_transformer(folder, seed=2, init_range=0.02))

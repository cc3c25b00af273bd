"""The typed sections of an experiment config that have no config class of their own elsewhere: the BM25 member
(``lexical:``) and the Qdrant store (``store:``). Mining, training and the export have theirs (``MiningConfig``,
``TrainingConfig``, ``ExportConfig``). Each section is built once when the config is read and passed down; the
YAML keeps the mapping as written, which is what the stage keys hash (so that a default added later leaves the
keys of recorded runs alone)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from haystack_hardneg.options import ConfigError, Options, from_mapping, option

# The collection a run folder's store holds (local mode in the run folder, or on the server named by ``url``).
COLLECTION = "experiment"


@dataclass
class LexicalSection(Options):
    """A BM25 member for a hybrid first stage."""

    language: str | None = option("english", help="the Snowball stemmer's language (null: no stemming)")
    weight: float | str = option("auto", help=(
        "BM25's weight in the hybrid first stage: 'auto' (chosen on the training queries) or a number in 0..1"))
    tuning_queries: int | None = option(None, help=(
        "'auto' chooses the weight on a seeded sample of this many training queries (null: all of them)"))

    def validate(self) -> None:
        weight_ok = self.weight == "auto" or (isinstance(self.weight, (int, float)) and
                                              not isinstance(self.weight, bool) and 0.0 <= self.weight <= 1.0)
        if not weight_ok:
            raise ValueError(f"weight must be 'auto' or a number in 0..1, got {self.weight!r}.")
        if self.tuning_queries is not None and self.tuning_queries < 1:
            raise ValueError(f"tuning_queries must be >= 1 (null: all), got {self.tuning_queries}.")


@dataclass
class StoreSection(Options):
    """Where the run's Qdrant collection lives: local mode in the run folder (nothing set), a local ``path`` or
    ``location``, or a server ``url`` whose API key is read from the environment variable ``api_key_env``.
    Other keys go to ``QdrantDocumentStore`` as they are (``qdrant``)."""

    url: str | None = option(None, help="a Qdrant server or cluster")
    path: str | None = option(None, help="a folder for Qdrant's embedded local mode")
    location: str | None = option(None, help="e.g. ':memory:'")
    index: str = option(COLLECTION, help="the collection")
    api_key_env: str | None = option(None, help="the environment variable holding the server's API key")
    qdrant: dict = option(default_factory=dict, help="further QdrantDocumentStore settings, as given")


def store_section(store: Mapping[str, Any]) -> StoreSection:
    if not isinstance(store, Mapping):
        raise ConfigError("store must be a mapping of Qdrant settings (url, index, api_key_env, ...).")
    if "api_key" in store:
        # A key written in the config would be copied into the run folder's config.json: refuse it unread.
        raise ConfigError("store.api_key: a key is never written in a config; put it in an environment "
                          "variable and name that variable with store.api_key_env (e.g. QDRANT_API_KEY).")
    known = {"url", "path", "location", "index", "api_key_env"}
    return from_mapping(StoreSection, {k: v for k, v in store.items() if k in known}, where="store",
                        qdrant={k: v for k, v in store.items() if k not in known})


def lexical_section(lexical: Mapping[str, Any] | None) -> LexicalSection | None:
    return None if lexical is None else from_mapping(LexicalSection, lexical, where="lexical")

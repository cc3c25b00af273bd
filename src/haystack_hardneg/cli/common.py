"""Flags and helpers several commands share: the ensemble and the Qdrant store."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from haystack.utils import Secret

from haystack_hardneg.defaults import DEFAULT_CACHE_DIR, default_model
from haystack_hardneg.store.qdrant import open_document_store
from haystack_hardneg.store.qdrant_access import retriever_store


def add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ensemble (ignored with --pipeline)")
    group.add_argument("--model", action="append", help="member model: hub id or local folder (repeat for an ensemble)")
    group.add_argument("--weight", action="append", type=float, help="member weight, one per --model (default 1)")
    group.add_argument("--ensemble", type=Path, help="YAML/JSON file with 'members' (MemberSpec fields) and 'combine'")
    group.add_argument("--combine", choices=["concat", "mean"], default=None, help="how member vectors are combined")
    group.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="embedding cache folder ('none' disables it)")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Qdrant store (ignored with --pipeline)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--store", default="qdrant-data", help="folder of Qdrant's embedded local mode (default)")
    where.add_argument("--url", help="a Qdrant server or cluster, e.g. http://localhost:6333")
    group.add_argument("--api-key-env", help="environment variable holding the server's API key (with --url; "
                                             "default: QDRANT_API_KEY)")
    group.add_argument("--index", default="Document", help="collection name")


def ensemble_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Members, combine mode and cache folder from ``--ensemble``, ``--model``/``--weight`` and ``--combine``."""
    settings: dict[str, Any] = {"members": [], "combine": "concat"}
    if args.ensemble:
        loaded = yaml.safe_load(args.ensemble.read_text())
        if not isinstance(loaded, dict) or "members" not in loaded:
            raise SystemExit(f"{args.ensemble}: expected a mapping with a 'members' list.")
        settings.update(loaded)
    if args.model:
        weights = args.weight or [1.0] * len(args.model)
        if len(weights) != len(args.model):
            raise SystemExit(f"Give one --weight per --model ({len(args.model)} models, {len(weights)} weights).")
        settings["members"] = [{"model": m, "weight": w} for m, w in zip(args.model, weights)]
    if not settings["members"]:
        settings["members"] = [{"model": default_model()}]
    if args.combine:
        settings["combine"] = args.combine
    cache_dir = None if str(args.cache_dir).lower() == "none" else str(Path(args.cache_dir).expanduser())
    settings["cache_dir"] = cache_dir
    return settings


def open_store(args: argparse.Namespace, embedding_dim: int, recreate: bool = False):
    if args.url:
        key = Secret.from_env_var(args.api_key_env or "QDRANT_API_KEY", strict=False)
        return open_document_store(url=args.url, api_key=key, index=args.index, embedding_dim=embedding_dim,
                                   recreate_index=recreate)
    if args.api_key_env:
        raise ValueError(f"--api-key-env {args.api_key_env} applies to a Qdrant server (--url); the local store "
                         f"--store {args.store} has no key: leave it out, or give --url.")
    return open_document_store(path=args.store, index=args.index, embedding_dim=embedding_dim, recreate_index=recreate)


@contextmanager
def closing_stores(pipeline):
    """``pipeline``, whose document stores are closed when the command ends, failed or not: Qdrant's local mode
    locks its folder until its client closes, and a caller running several commands in one process (a notebook,
    a test) needs that lock back."""
    try:
        yield pipeline
    finally:
        for _, component in pipeline.walk():
            store = retriever_store(component)
            if callable(getattr(store, "close", None)):
                store.close()


def embedder_dimension(embedder) -> int:
    embedder.warm_up()
    return embedder.encoder.dimension

"""An ensemble member that is any Haystack embedder pair: a text embedder for queries and a document embedder for
documents (``OpenAITextEmbedder`` / ``OpenAIDocumentEmbedder`` against OpenAI or an OpenAI-compatible server,
Cohere, Jina, Fastembed, ``SentenceTransformers*Embedder``, ...).

Its vectors go through the same on-disk cache as a local model's, keyed by the member's identity: the component
types and the init parameters that shape a vector (model, dimensions, server URL, prefixes), never a secret. A
failed call keeps every batch cached before it, so the re-run asks the server only for what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging as logging_std
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
from haystack import Document, logging
from haystack.core.serialization import component_from_dict, import_class_by_name

from haystack_hardneg.embed.cache import EmbeddingCache, cache_keys
from haystack_hardneg.embed.ensemble import MemberSpec, l2_normalize, serialized

logger = logging.getLogger(__name__)

# Init parameters that change how a call is made, not the vector it returns: left out of the member's identity,
# so that a larger batch or a longer timeout still finds the cached vectors.
RUNTIME_PARAMETERS = frozenset({
    "progress_bar", "batch_size", "timeout", "max_retries", "http_client_kwargs", "organization", "device",
    "meta_fields_to_embed", "embedding_separator", "raise_on_failure", "concurrency_limit", "parallel",
    "local_files_only", "cache_dir", "threads",
})
# Where an embedder has no retries of its own: tries of a call that failed for a reason that may pass, and the
# first wait between them (doubled each time).
TRIES = 3
FIRST_WAIT_S = 1.0
TRANSIENT = ("Timeout", "Connection", "RateLimit", "Unavailable", "InternalServer", "RemoteProtocol")
PROBE = "How many dimensions does this embedder give?"


class MemberFailedError(OSError):
    """An embedder member's call failed for good: the message names the member and says how to resume."""


class NoVectorsError(ConnectionError):
    """A call returned without some of its vectors (taken as a failure that may pass)."""


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in ("env_var", "token")


def _shaping(data: dict[str, Any]) -> dict[str, Any]:
    """A serialised component without its secrets and runtime-only parameters."""
    params = {k: v for k, v in (data.get("init_parameters") or {}).items()
              if k not in RUNTIME_PARAMETERS and not _is_secret(v)}
    return {"type": data.get("type"), "init_parameters": params}


def member_fingerprint(spec: MemberSpec) -> str:
    """What identifies an embedder member's vectors (in place of a local model's weight hash). Taken from the
    components as they serialise themselves (every default spelled out), so a YAML dict naming only some
    parameters and the component it builds have one identity."""
    spec = with_components(spec)
    payload = json.dumps([_shaping(serialized(spec.text_embedder)), _shaping(serialized(spec.document_embedder))],
                         sort_keys=True, default=str)
    return "embedder:" + hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def instantiate(component: Any, role: str) -> Any:
    """A component from its serialised dict, within Haystack's deserialisation allowlist; an object as it is."""
    if not isinstance(component, dict):
        return component
    if "type" not in component:
        raise ValueError(f"An embedder member's {role} is a Haystack component or its serialised dict with 'type' "
                         f"and 'init_parameters'; got the keys {sorted(component)}.")
    cls = import_class_by_name(component["type"])
    return component_from_dict(cls, component, role)


def with_components(spec: MemberSpec) -> MemberSpec:
    """``spec`` with its embedders as component objects (a serialised one is built now)."""
    from dataclasses import replace

    if not spec.is_embedder_pair:
        return spec
    return replace(spec, text_embedder=instantiate(spec.text_embedder, "text_embedder"),
                   document_embedder=instantiate(spec.document_embedder, "document_embedder"))


class _Held(logging_std.Filter):
    """Holds back what an embedder's module logs at WARNING or above during one call."""

    def __init__(self):
        super().__init__()
        self.records: list[logging_std.LogRecord] = []

    def filter(self, record: logging_std.LogRecord) -> bool:
        if record.levelno < logging_std.WARNING:
            return True
        self.records.append(record)
        return False

    def first(self) -> str:
        return self.records[0].getMessage().splitlines()[0]


@contextmanager
def _held_logs(*embedders: Any) -> Iterator[_Held]:
    """During one call, what the embedders log of a failure is held back: a failed call becomes one error that
    quotes it; a call that succeeds lets it through afterwards, as it was."""
    held = _Held()
    loggers = {logging_std.getLogger(type(e).__module__) for e in embedders}
    for one in loggers:
        one.addFilter(held)
    failed = False
    try:
        yield held
    except BaseException:
        failed = True
        raise
    finally:
        for one in loggers:
            one.removeFilter(held)
        if not failed:
            for record in held.records:
                logging_std.getLogger(record.name).handle(record)


def _transient(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(word in cls.__name__ for cls in type(error).__mro__ for word in TRANSIENT)


class HaystackEmbedderMember:
    """The encoder's view of an embedder pair: ``dimension``, ``fingerprint`` and ``encode``."""

    max_seq_length = None

    def __init__(self, spec: MemberSpec, cache: EmbeddingCache | None):
        spec = with_components(spec)
        self.spec = spec
        self.name = spec.name
        self.text_embedder, self.document_embedder = spec.text_embedder, spec.document_embedder
        for embedder in (self.text_embedder, self.document_embedder):
            if hasattr(embedder, "warm_up"):
                embedder.warm_up()
        self.fingerprint = self.cache_fingerprint = member_fingerprint(spec)
        # One call per cached batch: a failure loses at most the call that failed.
        self.chunk = spec.batch_size
        # An embedder with retries of its own (OpenAI's: max_retries) is trusted with them, even when set to 0.
        own = any(hasattr(e, "max_retries") for e in (self.text_embedder, self.document_embedder))
        self.tries = 1 if own else TRIES
        self.dimension = self._dimension(cache)

    def _dimension(self, cache: EmbeddingCache | None) -> int:
        """The embedder's dimension, from one embedded text (cached like any other, so asked for once)."""
        prompt = self.spec.document_prompt
        keys = cache_keys(self.fingerprint, prompt, None, [PROBE])
        found = cache.get_many(keys)[0] if cache is not None else None
        if found is None:
            found = np.asarray(self.encode([PROBE], "document", prompt)[0], dtype=np.float32)
            if cache is not None:
                cache.put_many([(keys[0], l2_normalize(found[None])[0])])
        return int(found.shape[0])

    def encode(self, texts: list[str], kind: str, prompt: str) -> np.ndarray:
        if kind == "document":
            vectors = self._call(lambda: self._documents(texts, prompt))
        else:
            vectors = [self._call(lambda t=text: [self.text_embedder.run(text=prompt + t)["embedding"]])[0]
                       for text in texts]
        return np.asarray(vectors, dtype=np.float32)

    def _documents(self, texts: list[str], prompt: str) -> list:
        embedded = self.document_embedder.run(documents=[Document(content=prompt + t) for t in texts])["documents"]
        vectors = [d.embedding for d in embedded]
        if len(vectors) != len(texts) or any(not v for v in vectors):
            # Some embedders (OpenAI's, by default) log a failed batch and return it without vectors.
            missing = len(texts) - sum(1 for v in vectors if v)
            raise NoVectorsError(f"no vector for {missing} of {len(texts)} text(s); the embedder's log says why")
        return vectors

    def _call(self, call: Callable[[], list]) -> list:
        wait = FIRST_WAIT_S
        for attempt in range(1, self.tries + 1):
            try:
                with _held_logs(self.text_embedder, self.document_embedder) as held:
                    return call()
            except Exception as error:
                if isinstance(error, NoVectorsError) and held.records:
                    error = NoVectorsError(held.first())  # the embedder logged why (OpenAI's, with a traceback)
                if attempt < self.tries and _transient(error):
                    logger.warning("Ensemble member '{member}' failed ({reason}); trying again in {wait:g} s.",
                                   member=self.name, reason=type(error).__name__, wait=wait)
                    time.sleep(wait)
                    wait *= 2
                    continue
                reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                raise MemberFailedError(
                    f"Ensemble member '{self.name}' failed ({reason}). Every batch embedded before this one is in "
                    "the embedding cache: once the embedder answers again, run the same command to resume."
                ) from error
        raise AssertionError("unreachable: the last try returns or raises")

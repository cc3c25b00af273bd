"""Ensemble member specs and the combination math (numpy only, no Haystack, no models).

Two combinations are offered:

* ``"concat"`` (default) -- each member's vector is L2-normalised and scaled by ``sqrt(w_i / sum(w))``,
  then the members are concatenated. The dot product of two ensemble vectors is then *exactly* the
  weighted average of the members' cosine similarities (the paper's score averaging), whatever the
  members' dimensions, and every ensemble vector has unit norm, so cosine = dot in the store.
* ``"mean"`` -- the weighted element-wise mean of the normalised member vectors, re-normalised
  (the paper's embedding averaging). Only defined when all members share one dimension.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

CombineMode = Literal["concat", "mean"]
MEMBER_BACKENDS = ("torch", "onnx", "openvino")
MEMBER_PRECISIONS = ("fp32", "bf16")
COMBINE_MODES: tuple[str, ...] = ("concat", "mean")


@dataclass(frozen=True)
class MemberSpec:
    """One embedding model of an ensemble: a sentence-transformers model, or any Haystack embedder pair.

    :param model: a Hugging Face hub id or a local folder that ``SentenceTransformer`` loads.
    :param weight: the member's share in the ensemble score; weights are normalised to sum to 1.
    :param query_prompt: text put before every query (e.g. ``"query: "`` for e5, the bge instruction).
    :param document_prompt: text put before every document (e.g. ``"passage: "`` for e5).
    :param max_seq_length: truncation length in tokens; ``None`` keeps the model's own.
    :param batch_size: encoding batch size for this member (for an embedder pair: texts per call, and per
        cached batch, so an interrupted run keeps every finished call).
    :param text_embedder: instead of ``model``, a Haystack text embedder (a component, or its serialised
        ``{"type": ..., "init_parameters": ...}``) that embeds queries: ``OpenAITextEmbedder``,
        ``CohereTextEmbedder``, ``SentenceTransformersTextEmbedder``, ...
    :param document_embedder: the matching Haystack document embedder that embeds documents.
    :param backend: for a sentence-transformers model: ``"torch"`` (default), ``"onnx"`` or ``"openvino"``: the
        model's transformer exported once (kept under the cache folder) and run there, used only when its vectors
        are within cosine 0.999 of torch's on check texts (else torch, with a warning). The vector space, and so
        the ensemble's identity, stays the model's.
    :param int8: with ``backend`` onnx (dynamic) or openvino (static, NNCF) quantisation to int8, under the same
        check.
    :param precision: ``"bf16"`` computes in bfloat16 on backend torch or openvino (with int8: the operations left
        in floating point), under the same check; on a CPU without bfloat16 instructions (AVX-512 BF16, AMX), where
        it is slower than fp32, it is refused with a warning and the member runs in fp32.
    :param stored: this member's document vectors are the ones already in the collection a miner reads (your
        app's own index, written by this member's document embedder): they are read, never embedded again; the
        other members embed the stored texts. At most one member is stored.
    """

    model: str = ""
    weight: float = 1.0
    query_prompt: str = ""
    document_prompt: str = ""
    max_seq_length: int | None = None
    batch_size: int = 32
    text_embedder: Any = field(default=None, compare=False)
    document_embedder: Any = field(default=None, compare=False)
    stored: bool = False
    backend: str = "torch"
    int8: bool = False
    precision: str = "fp32"

    def __post_init__(self) -> None:
        pair = (self.text_embedder is not None, self.document_embedder is not None)
        if any(pair):
            if not all(pair):
                raise ValueError("An embedder member needs both a text_embedder (for queries) and a "
                                 "document_embedder (for documents).")
            if self.model:
                raise ValueError(f"A member is a model or an embedder pair, not both (model '{self.model}').")
            if self.max_seq_length is not None:
                raise ValueError(f"Member '{self.name}': max_seq_length applies to a sentence-transformers model; "
                                 "set the embedder's own truncation instead.")
        elif not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("An ensemble member needs a model (a hub id or a local folder) or a Haystack "
                             "text_embedder and document_embedder.")
        if self.backend not in MEMBER_BACKENDS:
            raise ValueError(f"Member '{self.name}': backend must be one of {list(MEMBER_BACKENDS)}, got "
                             f"{self.backend!r}.")
        if self.backend != "torch" and self.is_embedder_pair:
            raise ValueError(f"Member '{self.name}': backend applies to a sentence-transformers model; an embedder "
                             "pair runs as its components do.")
        if self.int8 and self.backend == "torch":
            raise ValueError(f"Member '{self.name}': int8 needs backend onnx or openvino.")
        if self.precision not in MEMBER_PRECISIONS:
            raise ValueError(f"Member '{self.name}': precision must be one of {list(MEMBER_PRECISIONS)}, got "
                             f"{self.precision!r}.")
        if self.precision == "bf16" and (self.backend == "onnx" or self.is_embedder_pair):
            raise ValueError(f"Member '{self.name}': precision bf16 needs backend torch or openvino (ONNX Runtime "
                             "computes bfloat16 on few CPUs).")
        if not np.isfinite(self.weight) or self.weight <= 0:
            raise ValueError(f"Member '{self.name}': weight must be a positive number, got {self.weight!r}.")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ValueError(f"Member '{self.name}': max_seq_length must be >= 1, got {self.max_seq_length}.")
        if self.batch_size < 1:
            raise ValueError(f"Member '{self.name}': batch_size must be >= 1, got {self.batch_size}.")

    @property
    def is_embedder_pair(self) -> bool:
        return self.document_embedder is not None

    @property
    def name(self) -> str:
        """How messages and reports name the member: the model, or the embedder's type and model."""
        if not self.is_embedder_pair:
            return self.model
        data = serialized(self.document_embedder)
        kind = str(data.get("type", "embedder")).rsplit(".", 1)[-1]
        params = data.get("init_parameters") or {}
        model = params.get("model") or params.get("model_name") or params.get("model_id")
        return f"{kind}({model})" if model else kind

    @property
    def label(self) -> str:
        """The short name progress bars and reports show: a model's folder (or hub) name, or the pair's ``name``."""
        return self.model.rstrip("/").rsplit("/", 1)[-1] if self.model else self.name

    @classmethod
    def coerce(cls, spec: "MemberSpec | str | dict[str, Any]") -> "MemberSpec":
        """Accept a MemberSpec, a bare model name/path, or a dict of MemberSpec fields."""
        if isinstance(spec, MemberSpec):
            return spec
        if isinstance(spec, str):
            return cls(model=spec)
        if isinstance(spec, dict):
            unknown = set(spec) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError(
                    f"Unknown ensemble member field(s) {sorted(unknown)}; "
                    f"known: {sorted(cls.__dataclass_fields__)}."
                )
            return cls(**spec)
        raise TypeError(f"An ensemble member is a MemberSpec, a model name or a dict, not {type(spec).__name__}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data; an embedder pair as Haystack serialises each component (secrets as their env var names)."""
        data = {k: getattr(self, k) for k in ("weight", "query_prompt", "document_prompt", "max_seq_length",
                                              "batch_size")}
        # Only what differs from the defaults: a plain member serialises as it always has.
        data.update({k: getattr(self, k) for k, default in (("stored", False), ("backend", "torch"), ("int8", False),
                                                                 ("precision", "fp32"))
                     if getattr(self, k) != default})
        if self.is_embedder_pair:
            return {**data, "text_embedder": serialized(self.text_embedder),
                    "document_embedder": serialized(self.document_embedder)}
        return {"model": self.model, **data}


def serialized(component: Any) -> dict[str, Any]:
    """A Haystack component as its ``{"type", "init_parameters"}`` dict (a dict is taken as already one)."""
    if isinstance(component, dict):
        return component
    to_dict = getattr(component, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"An embedder member's component must be serialisable (to_dict()), and "
                        f"{type(component).__name__} is not.")
    return to_dict()


def normalized_weights(members: Sequence[MemberSpec]) -> np.ndarray:
    weights = np.asarray([m.weight for m in members], dtype=np.float64)
    return weights / weights.sum()


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; a zero row is an error (it has no direction to compare)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)):
        raise ValueError("Embedding contains NaN or infinite values.")
    if np.any(norms == 0):
        raise ValueError(f"{int(np.sum(norms == 0))} embedding(s) are all zeros and cannot be normalised.")
    return vectors / norms


def ensemble_dimension(member_dims: Sequence[int], mode: CombineMode) -> int:
    if mode == "concat":
        return int(sum(member_dims))
    if mode == "mean":
        if len(set(member_dims)) != 1:
            raise ValueError(
                f"combine='mean' needs members of one dimension, got {list(member_dims)}; use combine='concat'."
            )
        return int(member_dims[0])
    raise ValueError(f"Unknown combine mode {mode!r}; choose one of {COMBINE_MODES}.")


def combine(member_vectors: Sequence[np.ndarray], weights: Sequence[float], mode: CombineMode = "concat") -> np.ndarray:
    """Combine per-member embeddings (each ``n x d_i``) into ensemble embeddings (``n x D``).

    ``weights`` need not sum to one. See the module docstring for what each mode preserves.
    """
    if len(member_vectors) == 0:
        raise ValueError("An ensemble needs at least one member.")
    if len(member_vectors) != len(weights):
        raise ValueError(f"{len(member_vectors)} member matrices but {len(weights)} weights.")
    rows = {np.asarray(v).shape[0] for v in member_vectors}
    if len(rows) != 1:
        raise ValueError(f"Members embedded different numbers of texts: {sorted(rows)}.")
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    normalized = [l2_normalize(v) for v in member_vectors]
    ensemble_dimension([v.shape[1] for v in normalized], mode)
    if mode == "concat":
        return np.hstack([v * np.float32(np.sqrt(wi)) for v, wi in zip(normalized, w)]).astype(np.float32)
    mean = sum(v * np.float32(wi) for v, wi in zip(normalized, w))
    return l2_normalize(mean)


@dataclass(frozen=True)
class EnsembleIdentity:
    """What makes two ensemble vectors comparable: members (and their weights), mode, dimension.

    ``fingerprints`` are content hashes of each member's weights when known, so that two different
    models saved under the same path are told apart. ``members`` also records prompts and max length,
    but the key leaves them out: they change how a text is encoded, not the vector space, and e5-style
    models need different prompts on the two sides (an indexing pipeline that only names the document
    prompt and a query pipeline that only names the query prompt describe the same space).
    """

    members: tuple[dict[str, Any], ...]
    combine: str
    dimension: int
    fingerprints: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        # A weight fingerprint, when known, stands for the model instead of its path: the same model
        # moved to another folder (or named by hub id) must keep the same identity.
        return self._hash([{"model": src, "weight": m["weight"]} for m, src in zip(self.members, self._sources())])

    def _sources(self) -> list[str]:
        return list(self.fingerprints) or [m["model"] for m in self.members]

    def _hash(self, members: list[dict[str, Any]]) -> str:
        payload = json.dumps({"members": members, "combine": self.combine, "dimension": self.dimension},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def describe(self) -> str:
        parts = [f"{m['model']} (w={m['weight']:g})" for m in self.members]
        return f"ensemble {self.key}: {' + '.join(parts)}, combine={self.combine}, dim={self.dimension}"


def ensemble_identity(
    members: Sequence[MemberSpec], mode: CombineMode, member_dims: Sequence[int], fingerprints: Sequence[str] = ()
) -> EnsembleIdentity:
    weights = normalized_weights(members)
    described = tuple(
        {
            "model": m.name,
            "weight": round(float(w), 6),
            "query_prompt": m.query_prompt,
            "document_prompt": m.document_prompt,
            "max_seq_length": m.max_seq_length,
        }
        for m, w in zip(members, weights)
    )
    return EnsembleIdentity(
        members=described,
        combine=mode,
        dimension=ensemble_dimension(member_dims, mode),
        fingerprints=tuple(fingerprints),
    )

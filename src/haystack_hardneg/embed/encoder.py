"""Loading ensemble members and encoding texts through the cache.

No Haystack here: the components, the miner and the CLI all call :class:`EnsembleEncoder`; a member that is a
Haystack embedder pair is loaded from ``haystack_member``, imported only when an ensemble has one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from tqdm.auto import tqdm

from haystack_hardneg.defaults import DEFAULT_CACHE_DIR
from haystack_hardneg.embed.cache import EmbeddingCache, cache_keys
from haystack_hardneg.embed.ensemble import (
    CombineMode,
    EnsembleIdentity,
    MemberSpec,
    combine,
    ensemble_dimension,
    ensemble_identity,
    l2_normalize,
)
from haystack_hardneg.machine import bf16_support, cpu, describe_cpu, missing_int8

logger = logging.getLogger(__name__)

TextKind = Literal["query", "document"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
# Encoded texts are written to the cache after every chunk, so an interrupted run loses at most one chunk
# and the progress bar moves at least every chunk.
ENCODE_CHUNK = 256


class ModelNotFoundError(FileNotFoundError):
    """A member's model cannot be had: a local folder that does not exist or holds no model, or a hub id that
    cannot be loaded (no hub access, no such model)."""


def looks_like_path(model: str) -> bool:
    """``org/name`` is read as a hub id unless such a folder exists; anything else path-like is a path."""
    if model.startswith(("/", ".", "~")) or Path(model).expanduser().exists():
        return True
    return not _HUB_ID.match(model)


def check_model_source(model: str) -> None:
    """Fail fast on a local model path that cannot be loaded; hub ids are left to load time."""
    if not looks_like_path(model):
        return
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"Model folder '{model}' does not exist. Give a local folder saved by sentence-transformers "
            f"or a Hugging Face hub id (e.g. 'sentence-transformers/all-MiniLM-L6-v2')."
        )
    if not any((path / name).exists() for name in ("modules.json", "config.json")):
        raise ModelNotFoundError(
            f"Folder '{model}' holds no model (neither modules.json nor config.json); "
            f"it has: {sorted(p.name for p in path.iterdir())[:10]}."
        )


def weights_fingerprint(model) -> str:
    """A content hash of a torch module's parameters and buffers: same weights, same fingerprint."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        data = tensor.detach().cpu().contiguous()
        h.update(str(data.dtype).encode())
        h.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return h.hexdigest()


class SentenceTransformerMember:
    """A member that is a sentence-transformers model, loaded in this process."""

    def __init__(self, spec: MemberSpec, device: str | None, export_dir: Path):
        try:
            source = str(Path(spec.model).expanduser()) if looks_like_path(spec.model) else spec.model
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(source, device=device)
        except Exception as error:  # the library's own messages are long; name the member and the way out
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ModelNotFoundError(
                f"Could not load ensemble member '{spec.model}' ({first_line}). Without access to the "
                f"Hugging Face hub, give a local folder saved by sentence-transformers instead."
            ) from error
        if spec.max_seq_length is not None:
            self.model.max_seq_length = spec.max_seq_length
        self.spec = spec
        self.fingerprint = weights_fingerprint(self.model)
        # Vectors of another backend differ from torch's in the last digits: cached apart, same identity.
        self.cache_fingerprint = self.fingerprint
        self.chunk = ENCODE_CHUNK
        self.exported = None
        bf16 = spec.precision == "bf16" and self._bf16_pays()
        if spec.backend != "torch" or bf16:
            self._use_backend(export_dir, bf16)

    def _bf16_pays(self) -> bool:
        lacking, where = bf16_support(self.model.device.type)
        if lacking:
            logger.warning("Member '%s' asks for precision bf16, and %s has no %s: bfloat16 would run several times "
                           "slower than float32 there; it runs in fp32.", self.spec.name, where, lacking)
        return not lacking

    def _use_backend(self, export_dir: Path, bf16: bool) -> None:
        """Run on the spec's backend and precision when its vectors pass the check against torch fp32's."""
        from haystack_hardneg.embed.exported import BackendUnsuitable, checked, int8_scheme, non_default_encoder

        spec = self.spec
        kind = f"{spec.backend}{' int8' if spec.int8 else ''}{' bf16' if bf16 else ''}"
        if spec.int8 and (lacking := missing_int8()):
            logger.warning("Member '%s' asks for int8, and this CPU (%s) has no %s instructions: its int8 matrix "
                           "products run widened, rarely faster than fp32.",
                           spec.name, describe_cpu(cpu()), lacking)
        try:
            exported = non_default_encoder(self.model, self.fingerprint, spec.backend, spec.int8, export_dir,
                                           bf16=bf16)
            lowest = checked(self.model, exported, spec.batch_size)
        except BackendUnsuitable as why:
            logger.warning("Member '%s' runs on torch fp32, not %s: %s.", spec.name, kind, why)
            return
        logger.info("Member '%s' runs on %s (lowest cosine to torch fp32's vectors on the check texts: %.5f).",
                    spec.name, kind, lowest)
        self.exported = exported
        scheme = f":{int8_scheme(spec.backend)}" if spec.int8 else ""
        self.cache_fingerprint = f"{self.fingerprint}:{spec.backend}{scheme}{':bf16' if bf16 else ''}"
        if spec.backend == "torch":
            self.model = exported.model  # the float32 copy is no longer needed

    @property
    def max_seq_length(self) -> int | None:
        return self.model.max_seq_length

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def encode(self, texts: list[str], kind: TextKind, prompt: str) -> np.ndarray:
        if self.exported is not None:
            return self.exported.encode(texts, prompt, self.spec.batch_size)
        return self.model.encode(texts, prompt=prompt or None, batch_size=self.spec.batch_size,
                                 show_progress_bar=False, convert_to_numpy=True)


class EnsembleEncoder:
    """Encodes texts with every member, combines them, and caches each member's vectors on disk.

    :param members: the ensemble members (``MemberSpec``, model names or dicts of MemberSpec fields).
    :param combine: ``"concat"`` (exact weighted average of cosines) or ``"mean"`` (embedding averaging).
    :param cache_dir: folder of the embedding cache; ``None`` disables caching.
    :param device: torch device string (``"cpu"``, ``"cuda:0"``); ``None`` lets sentence-transformers choose.
    :param progress_bar: show a tqdm bar per member while encoding.
    """

    def __init__(
        self,
        members: Sequence[MemberSpec | str | dict],
        *,
        combine: CombineMode = "concat",
        cache_dir: str | None = None,
        device: str | None = None,
        progress_bar: bool = True,
    ):
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        self.members = [MemberSpec.coerce(m) for m in members]
        if combine not in ("concat", "mean"):
            raise ValueError(f"combine must be 'concat' or 'mean', got {combine!r}.")
        self.combine_mode: CombineMode = combine
        for member in self.members:
            if not member.is_embedder_pair:
                check_model_source(member.model)
        if sum(m.stored for m in self.members) > 1:
            raise ValueError("At most one ensemble member is `stored` (its vectors are the collection's).")
        self.cache_dir = cache_dir
        self.device = device
        self.progress_bar = progress_bar
        self.backends: list = []
        self.cache: EmbeddingCache | None = None

    @property
    def export_dir(self) -> Path:
        """Where members on an exported backend keep their graphs: in the cache folder, else the default one's."""
        return Path(self.cache_dir or DEFAULT_CACHE_DIR).expanduser() / "exports"

    @property
    def is_loaded(self) -> bool:
        return bool(self.backends)

    def load(self) -> None:
        if self.is_loaded:
            return
        # Open first: an embedder member finds its dimension in the cache rather than asking its server again.
        self.cache = EmbeddingCache(self.cache_dir) if self.cache_dir is not None else None
        try:
            backends = [self._backend(member) for member in self.members]
            ensemble_dimension([b.dimension for b in backends], self.combine_mode)
        except BaseException:
            if self.cache is not None:
                self.cache.close()
            self.cache = None
            raise
        self.backends = backends

    def _backend(self, member: MemberSpec):
        if not member.is_embedder_pair:
            return SentenceTransformerMember(member, self.device, self.export_dir)
        # Haystack components: imported only for an ensemble that has such a member.
        from haystack_hardneg.embed.haystack_member import HaystackEmbedderMember

        return HaystackEmbedderMember(member, self.cache)

    @property
    def stored_member(self) -> int | None:
        """The member whose document vectors a collection already holds, if one is marked ``stored``."""
        return next((i for i, m in enumerate(self.members) if m.stored), None)

    def combine_with_stored(self, stored_vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Ensemble vectors of documents whose stored member's vectors are given (any norm): the other members
        embed ``texts`` (through the cache)."""
        index = self.stored_member
        self._require_loaded()
        if index is None:
            raise ValueError("No ensemble member is marked `stored`.")
        if stored_vectors.shape[1] != self.backends[index].dimension:
            raise ValueError(f"The collection holds {stored_vectors.shape[1]}-d vectors, but the stored member "
                             f"'{self.members[index].name}' gives {self.backends[index].dimension}-d ones: mark the "
                             "member whose document embedder wrote the collection.")
        per_member = [l2_normalize(np.asarray(stored_vectors, dtype=np.float32)) if i == index
                      else self.encode_member(i, texts, "document") for i in range(len(self.members))]
        return combine(per_member, [m.weight for m in self.members], self.combine_mode)

    @property
    def fingerprints(self) -> list[str]:
        self._require_loaded()
        return [b.fingerprint for b in self.backends]

    def _require_loaded(self) -> None:
        if not self.is_loaded:
            raise RuntimeError("The ensemble's models are not loaded yet: call warm_up() (or load()) first.")

    @property
    def member_dimensions(self) -> list[int]:
        self._require_loaded()
        return [b.dimension for b in self.backends]

    @property
    def dimension(self) -> int:
        return ensemble_dimension(self.member_dimensions, self.combine_mode)

    @property
    def identity(self) -> EnsembleIdentity:
        return ensemble_identity(self.members, self.combine_mode, self.member_dimensions, self.fingerprints)

    def encode_member(self, index: int, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        """One member's L2-normalised vectors for ``texts`` (``n x d_index``), from the cache where possible."""
        self._require_loaded()
        member, backend = self.members[index], self.backends[index]
        prompt = member.query_prompt if kind == "query" else member.document_prompt
        out = np.empty((len(texts), backend.dimension), dtype=np.float32)
        if self.cache is not None:
            keys = cache_keys(backend.cache_fingerprint, prompt, backend.max_seq_length, texts)
            cached = self.cache.get_many(keys)
            todo = [i for i, v in enumerate(cached) if v is None]
            for i, v in enumerate(cached):
                if v is not None:
                    out[i] = v
        else:
            keys, todo = [], list(range(len(texts)))
        bar = tqdm(
            total=len(todo),
            desc=f"Embedding {'queries' if kind == 'query' else 'documents'} with {member.label}",
            unit="text",
            disable=not self.progress_bar or not todo,
        )
        # Longest first over *all* pending texts, as sentence-transformers sorts one encode call, so that
        # chunking pads no more than a single call would.
        todo = sorted(todo, key=lambda i: -len(texts[i]))
        with bar:
            for start in range(0, len(todo), backend.chunk):
                chunk = todo[start : start + backend.chunk]
                vectors = l2_normalize(np.asarray(backend.encode([texts[i] for i in chunk], kind, prompt),
                                                  dtype=np.float32))
                out[chunk] = vectors
                if self.cache is not None:
                    self.cache.put_many((keys[i], v) for i, v in zip(chunk, vectors))
                bar.update(len(chunk))
        return out

    def encode_members(self, texts: Sequence[str], kind: TextKind) -> list[np.ndarray]:
        return [self.encode_member(i, texts, kind) for i in range(len(self.members))]

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        """Ensemble vectors (``n x dimension``, unit norm) for ``texts``."""
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return combine(self.encode_members(texts, kind), [m.weight for m in self.members], self.combine_mode)

"""On-disk embedding cache: one SQLite file, one row per (model fingerprint, prompt, length, text).

SQLite gives atomic, crash-safe writes (an interrupted indexing run keeps every batch it committed)
and lets several processes read the same cache. Vectors are stored as raw float32 bytes.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

_SCHEMA = "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, dim INTEGER NOT NULL, vector BLOB NOT NULL)"
# SQLite's default limit on bound parameters is 999 on old builds.
_LOOKUP_CHUNK = 900


def cache_key_prefix(model_fingerprint: str, prompt: str, max_seq_length: int | None) -> "hashlib._Hash":
    """The hash state shared by every text of one (model, prompt, length): copied per text, not rebuilt."""
    h = hashlib.blake2b(digest_size=20)
    for part in (model_fingerprint, prompt, str(max_seq_length)):
        h.update(part.encode())
        h.update(b"\x00")
    return h


def cache_keys(model_fingerprint: str, prompt: str, max_seq_length: int | None, texts: Sequence[str]) -> list[bytes]:
    prefix = cache_key_prefix(model_fingerprint, prompt, max_seq_length)
    keys = []
    for text in texts:
        h = prefix.copy()
        h.update(text.encode())
        keys.append(h.digest())
    return keys


class EmbeddingCache:
    """Maps cache keys to float32 vectors, persisted in ``<directory>/embeddings.sqlite``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "embeddings.sqlite"
        self._connection = sqlite3.connect(self.path, timeout=60)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(_SCHEMA)
        self._connection.commit()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._connection.execute(f"SELECT key, dim, vector FROM embeddings WHERE key IN ({marks})", chunk)
            for key, dim, blob in rows:
                found[bytes(key)] = np.frombuffer(blob, dtype=np.float32, count=dim)
        result = [found.get(k) for k in keys]
        hits = sum(v is not None for v in result)
        self.hits += hits
        self.misses += len(result) - hits
        return result

    def put_many(self, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        rows = [(k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items]
        with self._connection:
            self._connection.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        self._connection.close()

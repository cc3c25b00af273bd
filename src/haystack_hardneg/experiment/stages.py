"""Stage caching: a stage is skipped when its key (everything it depends on, upstream keys included) is the one
recorded when it last finished, and its outputs are still there. Change one setting and only the stages whose
key it enters run again.

The record is ``stages.json`` in the run folder, rewritten atomically after every finished stage, so an
interrupted experiment resumes at the stage it was in.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from haystack_hardneg.files import atomic_write_text


def stage_key(**parts: Any) -> str:
    """A short, stable hash of ``parts`` (JSON-serialisable settings and upstream keys)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(*paths: str | Path) -> str:
    """Hash of the files' bytes: a data set edited in place changes every stage downstream."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: str | Path) -> str:
    """Hash of a folder's file names and bytes (a model folder: weights, configs, tokenizer).

    Files inside hidden folders are left out: a model folder cloned with git or filled by the hub client keeps
    bookkeeping there (``.git/index``, ``.cache/huggingface``) that changes while the model does not."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = [p for p in folder.rglob("*") if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])]
    for path in sorted(files):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class ExperimentBusyError(RuntimeError):
    pass


class StageCache:
    """The run folder's stage records. One experiment process per folder: a second one is refused (it would
    race on the same files), through an advisory lock held while the cache lives."""

    def __init__(self, folder: str | Path):
        import fcntl

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ExperimentBusyError(f"Another experiment is running in {self.folder}; wait for it or use "
                                      f"another --out.") from None
        self.path = self.folder / "stages.json"
        self.records: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {})
        self.ran: list[str] = []
        self.reused: list[str] = []

    def is_done(self, name: str, key: str) -> bool:
        record = self.records.get(name)
        return bool(record and record["key"] == key and all((self.folder / o).exists() for o in record["outputs"]))

    def run(self, name: str, key: str, outputs: list[str], compute: Callable[[], Any]) -> None:
        """Run ``compute`` unless stage ``name`` finished with this ``key`` and its ``outputs`` (paths relative
        to the run folder) exist."""
        if self.is_done(name, key):
            self.reused.append(name)
            return
        # Forget the old record first: a recompute that fails halfway must not leave its half-written outputs
        # looking finished under the old key.
        if self.records.pop(name, None) is not None:
            atomic_write_text(self.path, json.dumps(self.records, indent=2))
        started = time.perf_counter()
        compute()
        missing = [o for o in outputs if not (self.folder / o).exists()]
        if missing:
            raise RuntimeError(f"Stage {name} finished without writing {missing}.")
        self.records[name] = {"key": key, "outputs": outputs, "seconds": round(time.perf_counter() - started, 1),
                              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(self.path, json.dumps(self.records, indent=2))
        self.ran.append(name)

    def close(self) -> None:
        """Release the folder (also released when the process ends)."""
        self._lock.close()

    def seconds(self, name: str) -> float | None:
        record = self.records.get(name)
        return record["seconds"] if record else None

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
from typing import Any, Callable, Protocol

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


# A resource stages may use: the embedding models and the Qdrant store, released once no stage left to run uses
# them (local mode holds a lock, and the models hold memory that training wants).
ENSEMBLE = "ensemble"


class ExperimentBusyError(RuntimeError):
    pass


class StageCache:
    """The run folder's stage records. One experiment process per folder: a second one is refused (it would
    race on the same files), through an advisory lock held while the cache lives."""

    def __init__(self, folder: str | Path, *, read_only: bool = False):
        """``read_only``: the records as they are, for a plan: no folder made, no lock taken (records are written
        whole, so reading them beside a running experiment is safe)."""
        import fcntl

        self.folder = Path(folder)
        self._lock = None
        if not read_only:
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
        if self._lock is not None:
            self._lock.close()

    def seconds(self, name: str) -> float | None:
        record = self.records.get(name)
        return record["seconds"] if record else None


class Walk:
    """Stages ensured in the order of what they read: a stage that is there is reused; one that is not runs once
    the stages it reads are there. ``run`` computes a stage (through ``StageCache.run``); without it the walk is a
    dry run that lists, in ``would_run``, what a run would compute.

    A stage with ``kept`` files is there for the report when its record has its key and those files exist (a
    training imported without its model); it runs after all when a stage that reads it has to run."""

    def __init__(self, table: dict[str, Any], cache: StageCache, keys: dict[str, str | None],
                 run: Callable[[Any], None] | None = None):
        self.table, self.cache, self.keys, self._run = table, cache, keys, run
        self.settled: dict[str, bool] = {}  # name -> there whole (False: its kept files only)
        self.would_run: list[str] = []

    def wanted(self) -> list[str]:
        """The stages every run ensures, in table order."""
        return [name for name, stage in self.table.items() if stage.wanted]

    def _kept_there(self, name: str) -> bool:
        stage, key = self.table[name], self.keys[name]
        return bool(stage.kept) and self.cache.records.get(name, {}).get("key") == key and \
            all((self.cache.folder / f).exists() for f in stage.kept)

    def ensure(self, name: str, whole: bool | None = None) -> None:
        stage, key = self.table[name], self.keys[name]
        whole = not stage.kept if whole is None else whole
        if self.settled.get(name) is True or (name in self.settled and not whole):
            return
        done = key is None or self.cache.is_done(name, key)
        if done or (not whole and self._kept_there(name)):
            if key is not None and self._run is not None:
                self.cache.reused.append(name)
            self.settled[name] = done
            return
        for upstream in stage.reads:
            self.ensure(upstream, whole=True)
        if self._run is None:
            self.would_run.append(name)
        else:
            self.cache.run(name, self.keys[name], stage.outputs(), lambda: self._run(stage))
        self.settled[name] = True

    def needs(self, name: str, resource: str) -> bool:
        """Whether ensuring ``name`` may still use ``resource``: it or a stage it reads is not settled yet and
        uses it."""
        if name in self.settled:
            return False
        stage = self.table[name]
        return resource in stage.uses or any(self.needs(upstream, resource) for upstream in stage.reads)


class StageRun(Protocol):
    """What a stage's compute is given: the running experiment (runner.Experiment), as far as computes use it."""

    config: Any
    folder: Any
    progress_bar: bool
    mining_data: Any

    @property
    def splits(self) -> dict[str, Any]: ...

    @property
    def keys(self) -> dict[str, str | None]: ...

    def store(self, *, recreate: bool = False) -> Any: ...

    def text_embedder(self) -> Any: ...

    def close_store(self) -> None: ...

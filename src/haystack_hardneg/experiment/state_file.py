"""The file an exported state is read from: ``state.json`` and the gzip files it names, checked as untrusted
input. A state may come from another machine or another person: every field is type-checked, and every path it
names must stay inside its folder (reading) or the run folder under the stage's own name (writing), before any file
is read or written; a stored file may not decompress past the size it records."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

from haystack_hardneg.files import confined_path
from haystack_hardneg.options import is_number

FORMAT = 1
STATE_FILE = "state.json"
# How a file is carried: as it is, without the texts of its candidate lists, or rebuilt from its provenance.
REBUILDS = ("copy", "lists", "triplets")


class StateError(ValueError):
    pass


def read_state(source: Path) -> tuple[dict[str, Any], Path]:
    """The state in folder ``source`` and the path of its ``state.json``, its shape checked (a state may come
    from anywhere: every field is checked before any is used)."""
    state_path = confined_path(source, STATE_FILE, named_in=source)
    if not state_path.is_file():
        raise StateError(f"{source} holds no exported experiment state ({STATE_FILE}).")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise StateError(f"{state_path} is not an exported state ({error or 'nested too deeply'}); export the state "
                         f"again.") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StateError(f"{state_path} has format {found!r}; this version reads format {FORMAT}.")
    _check_shape(state, state_path)
    return state, state_path


def _check_shape(state: dict[str, Any], state_path: Path) -> None:
    def require(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise StateError(f"{state_path}: {where} must be {what}; export the state again.")

    require(isinstance(state.get("stages"), dict), "'stages'", "a mapping of stage names")
    require(isinstance(state.get("models", {}), dict) and all(
        isinstance(v, str) for v in state.get("models", {}).values()), "'models'", "a mapping of fingerprints")
    estimates = state.get("plan_estimates", {})
    require(isinstance(estimates, dict) and all(is_number(v) for v in estimates.values()),
            "'plan_estimates'", "a mapping of seconds")
    state.setdefault("models", {})
    for name, entry in state["stages"].items():
        where = f"stage {name!r}"
        require(isinstance(entry, dict) and isinstance(entry.get("record"), dict)
                and isinstance(entry.get("files"), dict), where, "a mapping with 'record' and 'files'")
        record = entry["record"]
        require(isinstance(record.get("key"), str), f"{where}'s key", "a string")
        require(isinstance(record.get("outputs"), list) and all(isinstance(o, str) for o in record["outputs"]),
                f"{where}'s outputs", "a list of paths")
        require(record.get("seconds") is None or is_number(record["seconds"]), f"{where}'s seconds", "a number")
        for rel, file in entry["files"].items():
            require(isinstance(file, dict) and file.get("rebuild") in REBUILDS, f"{where}'s file {rel!r}",
                    f"a mapping whose 'rebuild' is one of {list(REBUILDS)}")
            require(isinstance(file.get("sha256"), str) and isinstance(file.get("bytes"), int) and
                    (file["rebuild"] == "triplets" or isinstance(file.get("stored"), str)),
                    f"{where}'s file {rel!r}", "a mapping with 'sha256', 'bytes' and 'stored'")


def _owned_by(name: str, rel: str) -> bool:
    """Whether ``rel`` is a path stage ``name`` writes: its own folder, or its own file (``rerank/x.json``)."""
    return rel == f"{name}.json" or rel.startswith(f"{name}/")


def check_paths(state: dict[str, Any], state_path: Path, source: Path, out: Path) -> None:
    """Every path the state names stays inside its folder, and each stage names only its own files, before any
    file is read or written."""
    for name, entry in state["stages"].items():
        for rel in entry["record"]["outputs"]:
            confined_path(out, rel, named_in=state_path)
        for rel in sorted(entry["files"]):
            confined_path(out, rel, named_in=state_path)
            if not _owned_by(name, rel):
                raise StateError(f"{state_path}: stage {name!r} names {rel!r}, which is not one of its own files "
                                 f"(under {name}/): nothing was imported.")
        for rel, file in entry["files"].items():
            if file["rebuild"] != "triplets":
                stored = file["stored"]
                confined_path(source, stored, named_in=state_path)
                if not stored.startswith("files/"):
                    raise StateError(f"{state_path}: {rel} is stored at {stored!r}, outside the state's files/ "
                                     f"folder: nothing was imported.")


def decompressed(path: Path, size: int) -> bytes:
    """The gzip file ``path``, refused as soon as it grows past ``size`` bytes (the original's size, recorded
    beside it; a stored file never holds more than its original)."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read(size + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise StateError(f"{path} is not a readable gzip file ({error}): nothing was imported.") from None
    if len(data) > size:
        raise StateError(f"{path} holds more than the {size} bytes its state records: nothing was imported.")
    return data

"""Writing outputs so that an interrupted run never leaves half a file: temporary name, then rename."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# Errors that mean the disk (or the process's file-size limit) has no room: the message then names the file.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file beside it: a reader sees the old file or the new one, never
    half of one; on a full disk the old file stays and the error names the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would make outputs private to their writer
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.errno in NO_ROOM:
            raise OSError(error.errno, f"{error.strerror} while writing {len(data):,} bytes (nothing was changed "
                                       f"there: free some space, or write elsewhere)", str(path)) from error
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_save_figure(figure, path: str | Path, dpi: int = 100) -> Path:
    """A matplotlib figure as a PNG at ``path``, rendered into memory first so that no reader sees half a chart."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


def recover_interrupted_swap(path: str | Path) -> None:
    """Put back a folder that ``atomic_directory`` had moved aside when a crash hit between its two renames."""
    path = Path(path)
    found = readable_directory(path)
    if found != path:
        os.replace(found, path)


def readable_directory(path: str | Path) -> Path:
    """Where a reader finds the folder ``atomic_directory`` keeps at ``path``: the folder moved aside while a
    writer is between its two renames (or crashed there). Readers never rename: only writers recover, so a reader
    cannot undo a swap that another process is in the middle of."""
    path = Path(path)
    if not path.exists() and _previous(path).is_dir():
        return _previous(path)
    return path


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yields an empty staging folder beside ``path``; when the block ends without error the staging folder
    replaces ``path`` whole (no file of an older version survives), otherwise it is removed and ``path`` is left
    as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(path)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        previous = _previous(path)
        shutil.rmtree(previous, ignore_errors=True)
        if path.exists():
            os.replace(path, previous)
        os.replace(staging, path)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def jsonl_text(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    # Split on "\n" only: str.splitlines() also splits on U+2028/U+2029/U+0085, which json.dumps(ensure_ascii=False)
    # leaves unescaped inside strings.
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


class UnsafePathError(ValueError):
    """A path named by a file someone else made (a state, a model folder's JSON) that leads outside its folder."""


def confined_path(root: str | Path, relative: str, *, named_in: str | Path) -> Path:
    """``root / relative`` where ``relative`` (as named in the file ``named_in``) stays inside ``root``: a plain
    relative path, without ``..``, and with no symlink on the way from ``root`` to it. Checked before anything is
    read or written there, since the file naming it may be hostile (a hash it also supplies proves nothing)."""
    if not isinstance(relative, str) or not relative or "\0" in relative or "\\" in relative:
        raise UnsafePathError(f"{named_in} names the path {relative!r}, which is not a relative path inside {root}.")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise UnsafePathError(f"{named_in} names {relative!r}, which leads outside {root}: only paths inside the "
                              f"folder are followed (no '..', no absolute path).")
    path = Path(root)
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise UnsafePathError(f"{named_in} names {relative!r}, and {path} is a symbolic link: links are not "
                                  f"followed out of {root}; replace it with the file itself.")
    return path

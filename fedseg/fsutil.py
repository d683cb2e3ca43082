"""Crash-safe file writing: temp file in the target folder, fsync, rename, fsync the folder.

A crash at any point leaves either the old file (or none) or the complete new one, never a partial
file at the destination. Temp files are named ``.<name>.<random>.tmp`` so a reader that globs for the
real names never sees them, and ``remove_stale_temps`` can clean them after an interruption.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fsync_dir",
    "remove_stale_temps",
]

TEMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry so a completed rename survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; when the block succeeds, fsync it and rename it onto ``dest``.

    Use it for writers that want a path (h5py, SimpleITK, matplotlib). If the block raises, the temp
    file is removed and ``dest`` is untouched. ``mode`` sets the permission bits before the rename
    (0o600 for private keys); by default the file gets the usual ``0o666 & ~umask`` (mkstemp alone would
    leave every file private to its owner, which gets in the way of sharing plans and artifacts).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TEMP_SUFFIX, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_current_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path, data: bytes | Callable[[Any], None], *, mode: int | None = None) -> None:
    """Write ``data`` (bytes, or a callable that writes to a binary file object) to ``dest`` atomically."""
    with atomic_path(dest, mode=mode) as tmp, open(tmp, "wb") as fh:
        if callable(data):
            data(fh)
        else:
            fh.write(data)


def atomic_write_text(dest: Path, text: str, *, mode: int | None = None) -> None:
    """Write UTF-8 text to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"), mode=mode)


def atomic_write_json(dest: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (a trailing newline) to ``dest`` atomically."""
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files an interrupted run left in ``directory``; return how many were removed."""
    removed = 0
    for path in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed

"""Crash-safe file writing: temp file in the target folder, fsync, rename, fsync the folder.

A crash at any point leaves either the old file (or none) or the complete new one, never a partial
file at the destination. Temp files are named ``.<name>.<random>.tmp`` so a reader that globs for the
real names never sees them, and ``remove_stale_temps`` can clean them after an interruption.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "folder_lock",
    "fsync_dir",
    "refuse_output_overlap",
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


def remove_stale_temps(directory: Path, pattern: re.Pattern[str] | None = None) -> int:
    """Delete temp files an interrupted run left in ``directory``; return how many were removed.

    ``pattern`` (matched against the whole name) limits it to one command's own kinds of temp file, so
    it never touches another command's in-flight file in a shared folder; folders it matches (scratch
    folders) are removed with their contents. Call it only while holding the folder's lock.
    """
    removed = 0
    for path in Path(directory).glob(".*"):
        if pattern is None and not path.name.endswith(TEMP_SUFFIX):
            continue
        if pattern is not None and not pattern.fullmatch(path.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if pattern is not None and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def folder_lock(directory: Path, name: str, *, holder: str) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``directory/name`` for the block; never wait.

    LockError when another process (or another handle in this one) holds it. The lock file is removed
    while still locked, at the end: a process that opened the old file then finds, once it holds the
    lock, that the name no longer points at its inode and starts over, so two holders never coexist.
    Where ``flock`` does not exist (Windows) the block runs unlocked.
    """
    from fedseg.errors import LockError

    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LockError(f"{directory}: another {holder} is running here (it holds {name}); let it finish, "
                            "then run again") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed the file after we opened it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def _same_file(a: Path, b: Path) -> bool:
    """Return whether ``a`` and ``b`` name one file: equal resolved paths, or the same (device, inode)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samestat(os.stat(a), os.stat(b))  # a hard link has its own path but the same inode
    except OSError:
        return False  # one of them does not exist: writing it cannot touch the other


def _inside(path: Path, folder: Path) -> bool:
    resolved, root = path.resolve(), folder.resolve()
    if resolved.is_relative_to(root):
        return True
    try:  # the output's folder may be the input folder under another name (a bind mount, a hard-linked dir)
        return any(os.path.samestat(os.stat(parent), os.stat(folder)) for parent in resolved.parents)
    except OSError:
        return False


def refuse_output_overlap(out: Path, inputs: Mapping[str, str | Path | None], *, what: str = "--out",
                          folders: Mapping[str, Path | None] | None = None) -> None:
    """Refuse an output that is one of the command's ``inputs`` (label -> path) or lies in one of ``folders``.

    Compared by resolved path and by (device, inode), so neither a symbolic nor a hard link to the plan,
    the global or a key gets it overwritten. ``None`` entries are skipped. OutputOverlapError otherwise.
    """
    from fedseg.errors import OutputOverlapError

    out = Path(out)
    for label, path in inputs.items():
        if path is not None and _same_file(out, Path(path)):
            raise OutputOverlapError(f"{what} {out} is the command's own {label} ({path}); refusing to overwrite "
                                     "an input: choose another path")
    for label, folder in (folders or {}).items():
        if folder is not None and _inside(out, Path(folder)):
            raise OutputOverlapError(f"{what} {out} lies inside the {label} ({folder}); refusing to write among "
                                     "the command's inputs: choose another path")

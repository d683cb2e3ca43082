"""A round store: a few whole-file operations over fsspec, atomic on every backend, retried on network errors.

Writes never expose half a file:

* folder and SFTP: the bytes go to a temporary name in the target folder (``.<name>.<random>.tmp``), which
  is then renamed onto the real name; readers list real names only;
* S3: one ``PutObject`` (an object appears whole or not at all).

Exclusive publishing (:meth:`Store.create`, "create if absent") is what keeps two coordinators from both
publishing a round: folder: ``link(2)`` of the temporary file to the real name, which fails when it exists
(atomic on local disks and NFSv3+; SMB and some sync clients may not honour it); SFTP: the plain SFTP
rename, which never overwrites an existing file (OpenSSH and asyncssh servers); S3: ``PutObject`` with
``If-None-Match: *`` (AWS S3 since 2024, MinIO, moto; a server that ignores the header silently
overwrites — compare-before-publish still catches it on the next read).

Transient failures (connection lost, timeouts, throttling: any error that is not "not found", "exists"
or "permission denied") are retried with exponential backoff and logged with the URL scrubbed of
credentials; after the last try a StoreError says what failed and where. Everything read is downloaded
to a local file; the caller verifies it like any other file (``read_artifact``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fedseg.errors import StoreError
from fedseg.fsutil import atomic_path
from fedseg.workflow.store.location import Backend, Location, open_filesystem, parse_location, redact

__all__ = ["Retry", "Store", "open_store"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_PERMANENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


@dataclass(frozen=True)
class Retry:
    """Exponential backoff: ``tries`` attempts, waiting ``first`` s, then x ``factor``, at most ``cap`` s."""

    tries: int = 6
    first: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delays(self) -> list[float]:
        return [min(self.cap, self.first * self.factor**i) for i in range(max(0, self.tries - 1))]


class Store:
    """Whole-file access to the store at ``location`` (keys are ``/``-separated paths below its root)."""

    def __init__(self, location: Location, fs: Any, *, retry: Retry = Retry(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.location = location
        self.fs = fs
        self.retry = retry
        self._sleep = sleep

    @property
    def url(self) -> str:
        return self.location.display

    def path(self, key: str) -> str:
        """Return the backend path of ``key``."""
        return posixpath.join(self.location.root, key)

    def _call(self, what: str, op: Callable[[], T]) -> T:
        delays = self.retry.delays()
        for attempt in range(len(delays) + 1):
            try:
                return op()
            except (StoreError, *_PERMANENT):
                raise
            except Exception as exc:  # fsspec backends raise OSError, asyncssh, botocore and aiohttp errors
                message = redact(str(exc)) or type(exc).__name__
                if attempt == len(delays):
                    raise StoreError(f"{self.url}: {what} failed after {attempt + 1} tries ({message})") from None
                log.warning("%s: %s failed (%s); retry %d of %d in %.1f s", self.url, what, message,
                            attempt + 1, len(delays), delays[attempt])
                self._sleep(delays[attempt])
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- reading

    def exists(self, key: str) -> bool:
        return self._call(f"checking {key}", lambda: bool(self.fs.exists(self.path(key))))

    def list(self, folder: str) -> list[str]:
        """Return the real file names in ``folder`` (temporary names skipped); [] when it does not exist."""
        def op() -> list[str]:
            try:
                entries = self.fs.ls(self.path(folder), detail=False)
            except FileNotFoundError:
                return []
            names = [posixpath.basename(str(e).rstrip("/")) for e in entries]
            return sorted(n for n in names if n and not n.startswith("."))
        return self._call(f"listing {folder}/", op)

    def get(self, key: str, dest: Path, *, max_bytes: int | None = None) -> bool:
        """Download ``key`` to ``dest`` atomically; False (and no file) when the store has no ``key``.

        ``max_bytes`` refuses larger files before downloading them (an untrusted store may serve anything).
        """
        def op() -> bool:
            try:
                size = self.fs.size(self.path(key))
            except FileNotFoundError:
                return False
            if max_bytes is not None and size is not None and size > max_bytes:
                raise StoreError(f"{self.url}/{key}: {size} bytes, expected at most {max_bytes}")
            with atomic_path(Path(dest)) as tmp:
                self.fs.get_file(self.path(key), str(tmp))
            return True
        try:
            return self._call(f"downloading {key}", op)
        except FileNotFoundError:  # removed between the size and the download
            return False

    # ---------------------------------------------------------------- writing

    def _temp_key(self, key: str) -> str:
        folder, name = posixpath.split(key)
        return posixpath.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")

    def put(self, key: str, source: Path | bytes) -> None:
        """Write ``source`` (a local file or bytes) to ``key`` atomically, replacing what was there."""
        self._write(key, source, exclusive=False)

    def create(self, key: str, source: Path | bytes) -> bool:
        """Write ``source`` to ``key`` only if ``key`` does not exist yet; False when it already existed."""
        return self._write(key, source, exclusive=True)

    def _write(self, key: str, source: Path | bytes, *, exclusive: bool) -> bool:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        verb = "publishing" if exclusive else "uploading"
        backend = self.location.backend
        if backend is Backend.S3:
            mode = "create" if exclusive else "overwrite"

            def s3_op() -> bool:
                try:
                    self.fs.pipe_file(self.path(key), data, mode=mode)
                except (FileExistsError, PermissionError) as exc:
                    # a failed If-None-Match (412) arrives as one of these, depending on the s3fs version
                    if exclusive and self.fs.exists(self.path(key)):
                        return False
                    raise StoreError(f"{self.url}/{key}: {verb} was refused ({redact(str(exc))})") from None
                return True
            return self._call(f"{verb} {key}", s3_op)
        return self._call(f"{verb} {key}", lambda: self._rename_into_place(key, data, exclusive))

    def _rename_into_place(self, key: str, data: bytes, exclusive: bool) -> bool:
        fs, dest = self.fs, self.path(key)
        tmp = self.path(self._temp_key(key))
        fs.makedirs(posixpath.dirname(dest), exist_ok=True)
        fs.pipe_file(tmp, data)
        try:
            if self.location.backend is Backend.FOLDER:
                return _local_rename(tmp, dest, exclusive)
            return _sftp_rename(fs, tmp, dest, exclusive)
        finally:
            with contextlib.suppress(Exception):
                if fs.exists(tmp):
                    fs.rm_file(tmp)


def _local_rename(tmp: str, dest: str, exclusive: bool) -> bool:
    from fedseg.fsutil import fsync_dir

    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    if exclusive:
        try:
            os.link(tmp, dest)  # fails when dest exists: the atomic "create if absent"
        except FileExistsError:
            return False
    else:
        os.replace(tmp, dest)
    fsync_dir(Path(dest).parent)
    return True


def _sftp_rename(fs: Any, tmp: str, dest: str, exclusive: bool) -> bool:
    from fsspec.asyn import sync

    async def rename() -> bool:
        async with fs._pool.get() as channel:
            if not exclusive:
                await channel.posix_rename(tmp, dest)
                return True
            try:
                await channel.rename(tmp, dest)  # SFTP v3 rename never overwrites an existing file
            except Exception:
                if await channel.exists(dest):
                    return False
                raise
            return True

    return bool(sync(fs.loop, rename))


def open_store(url: str, *, retry: Retry = Retry(), sleep: Callable[[float], None] = time.sleep) -> Store:
    """Open the store at ``url`` (connecting with retries); StoreError when it cannot be reached."""
    location = parse_location(url)
    probe = Store(location, None, retry=retry, sleep=sleep)
    fs = probe._call("connecting", lambda: _open_or_raise(location))
    return Store(location, fs, retry=retry, sleep=sleep)


def _open_or_raise(location: Location) -> Any:
    try:
        return open_filesystem(location)
    except StoreError as exc:
        if "cannot connect" in str(exc):
            raise ConnectionError(str(exc)) from None  # retried by the caller
        raise

"""Private scratch space for one aggregation round: verified tensors parked on disk, read back by range.

The coordinator keeps only what it must in memory (the float64 running sum and the update being read,
DESIGN.md §4.5). The verified current global and, for median / trimmed mean, every verified update are
written once into files in a fresh ``0700`` temporary folder beside the output, and read back with
``readinto`` into small buffers (never memory-mapped, so the pages do not count against the process).
Only bytes that already passed :func:`~fedseg.federation.artifact.read_artifact` are written here, and
the folder is private to the coordinator's user, so reading them back needs no second verification —
the same trust the process places in its own memory.

The format is raw: each tensor's bytes back to back, in native little-endian float32/float16; the
offsets, shapes and dtypes stay in the :class:`TensorFile` object, never in the file.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from fedseg.errors import AggregationError

__all__ = ["TensorFile", "scratch_dir"]


@contextlib.contextmanager
def scratch_dir(parent: Path | None) -> Iterator[Path]:
    """Yield a fresh private folder (``.fedseg-scratch-*`` in ``parent``, or the system temp dir); remove it after."""
    with tempfile.TemporaryDirectory(prefix=".fedseg-scratch-", dir=parent) as d:
        yield Path(d)


class TensorFile:
    """Tensors written once to a scratch file; read whole or by flat element range.

    :meth:`read_range` returns a view of one reusable buffer, valid until the next :meth:`read_range`
    call on the same object; :meth:`read` returns a new array.
    """

    def __init__(self, path: Path, tensors: Mapping[str, np.ndarray]) -> None:
        self.path = Path(path)
        self._layout: dict[str, tuple[int, tuple[int, ...], np.dtype]] = {}
        # O_EXCL and 0600: a fresh file only this user can open (the folder is 0700 too); read back by fd.
        self._file = io.FileIO(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), "r+")
        self._buffer = np.empty(0, dtype=np.uint8)
        try:
            offset = 0
            for name, tensor in tensors.items():
                array = np.asarray(tensor, order="C")  # not ascontiguousarray: it turns 0-d into 1-d
                self._layout[name] = (offset, tuple(array.shape), array.dtype)
                self._write_all(array.reshape(-1).view(np.uint8))
                offset += array.nbytes
        except BaseException:
            self.close()
            raise

    def _write_all(self, data: np.ndarray) -> None:
        view = memoryview(data)
        while view.nbytes:
            written = self._file.write(view)
            view = view[written:]

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (the scratch folder removes it)."""
        self._file.close()

    @property
    def names(self) -> list[str]:
        """Return the tensor names in the order they were written."""
        return list(self._layout)

    def shape(self, name: str) -> tuple[int, ...]:
        """Return the shape of tensor ``name``."""
        return self._layout[name][1]

    def _read_into(self, target: np.ndarray, offset: int) -> None:
        view = memoryview(target.reshape(-1).view(np.uint8))
        self._file.seek(offset)
        while view.nbytes:
            got = self._file.readinto(view)
            if not got:
                raise AggregationError(f"{self.path}: scratch file ended early (at byte {self._file.tell()})")
            view = view[got:]

    def read(self, name: str) -> np.ndarray:
        """Return tensor ``name`` as a new array."""
        offset, shape, dtype = self._layout[name]
        out = np.empty(shape, dtype=dtype)
        if out.size:
            self._read_into(out, offset)
        return out

    def read_range(self, name: str, start: int, stop: int) -> np.ndarray:
        """Return flat elements ``start:stop`` of tensor ``name`` (a view of a reused buffer; see the class)."""
        offset, shape, dtype = self._layout[name]
        stop = min(stop, math.prod(shape))
        count = max(0, stop - start)
        nbytes = count * dtype.itemsize
        if self._buffer.size < nbytes:
            self._buffer = np.empty(nbytes, dtype=np.uint8)
        out = self._buffer[:nbytes].view(dtype)
        if count:
            self._read_into(out, offset + start * dtype.itemsize)
        return out

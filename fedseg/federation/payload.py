"""The artifact payload: HDF5 bytes holding one contiguous, uncompressed dataset per tensor at the root.

:func:`encode_payload` writes them deterministically; :func:`decode_payload` walks verified bytes link by
link and trusts nothing in them beyond what libhdf5 itself must parse to list links: hard links to root
datasets only, contiguous storage of exactly the declared size, no filters, no external or virtual
storage, no attributes, IEEE little-endian float32/float16 as the manifest says, exactly the expected
names and shapes, finite values. Any failure raises ``ArtifactError`` naming the file and the tensor.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedseg.errors import ArtifactError
from fedseg.tensorspec import TensorSpec

__all__ = ["DTYPES", "check_finite", "check_name", "decode_payload", "encode_payload", "payload_dtype"]

_MAX_TENSORS = 100_000
# The HDF5 writer settings are fixed so identical inputs give byte-identical payloads (aggregation reruns).
_LIBVER = ("v110", "v110")
DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
# A spec's dtype names a float model parameter; an artifact may carry it at reduced precision.
_ACCEPTS = {"float32": ("float32", "float16"), "float16": ("float16",)}


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise ArtifactError(f"{where}: tensor name {name!r} must be a non-empty string without '/' or NUL")
    return name


def payload_dtype(tensors: Mapping[str, np.ndarray], where: str) -> str:
    kinds = {np.asarray(t).dtype for t in tensors.values()}
    names = {d.name for d in kinds}
    if len(names) != 1 or (names - set(DTYPES)):
        found = ", ".join(sorted(names)) or "no tensors"
        raise ArtifactError(f"{where}: all tensors must share one dtype, float32 or float16; found {found}")
    return names.pop()


def encode_payload(tensors: Mapping[str, np.ndarray]) -> bytes:
    """Return the HDF5 file bytes for ``tensors``: one contiguous dataset per tensor, sorted by name.

    Deterministic: no timestamps, a fixed libver and name order, so equal tensors give equal bytes.
    """
    import h5py

    buffer = io.BytesIO()
    # Align data to 64 bytes so the reader can hand out aligned zero-copy views of the payload buffer.
    with h5py.File(buffer, "w", libver=_LIBVER, alignment_threshold=1, alignment_interval=64) as f:
        for name in sorted(tensors):
            array = np.asarray(tensors[name])
            dtype = DTYPES[array.dtype.name]
            f.create_dataset(check_name(name, "payload"), data=array.astype(dtype, copy=False), track_times=False)
    return buffer.getvalue()


class _MemoryFile:
    """A read-only, seekable file over a buffer: h5py reads with ``readinto`` straight into its buffers."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readinto(self, buf: Any) -> int:
        target = memoryview(buf).cast("B")
        n = max(0, min(len(target), len(self._view) - self._pos))
        target[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        out = bytes(self._view[self._pos : end])
        self._pos = max(self._pos, end)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def flush(self) -> None:
        pass


def _link_kind(code: int) -> str:
    from h5py import h5l

    return {h5l.TYPE_SOFT: "a soft link", h5l.TYPE_EXTERNAL: "an external link"}.get(code, "a user-defined link")


def _check_dataset(dset: Any, name: str, dtype: str, size: int, where: str) -> tuple[int, ...]:
    """Check one dataset's storage and type; return its shape."""
    from h5py import h5d, h5t

    what = f"{where}: tensor {name!r}"
    if dset.is_virtual:
        raise ArtifactError(f"{what} is a virtual dataset; only plain contiguous datasets are allowed")
    if dset.external:
        raise ArtifactError(f"{what} uses external storage; only data inside the payload is allowed")
    dcpl = dset.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout != h5d.CONTIGUOUS:
        found = {h5d.CHUNKED: "chunked", h5d.COMPACT: "compact"}.get(layout, f"layout {layout}")
        raise ArtifactError(f"{what} is {found}; expected a contiguous dataset")
    if dcpl.get_nfilters():
        raise ArtifactError(f"{what} has {dcpl.get_nfilters()} filter(s); expected uncompressed data")
    if dset.attrs.keys():
        raise ArtifactError(f"{what} carries attributes {sorted(dset.attrs.keys())}; expected none")
    expected_type = h5t.IEEE_F32LE if dtype == "float32" else h5t.IEEE_F16LE
    if not dset.id.get_type().equal(expected_type):
        raise ArtifactError(f"{what} has dtype {dset.dtype}; the manifest declares little-endian {dtype}")
    shape = tuple(int(n) for n in dset.shape) if dset.shape is not None else None
    if shape is None:
        raise ArtifactError(f"{what} has a null dataspace; expected an array")
    nbytes = math.prod(shape) * DTYPES[dtype].itemsize
    stored = dset.id.get_storage_size()
    if stored != nbytes:
        raise ArtifactError(f"{what} stores {stored} bytes; shape {list(shape)} of {dtype} needs {nbytes}")
    if nbytes:
        offset = dset.id.get_offset()
        if offset is None or offset < 0 or offset + nbytes > size:
            raise ArtifactError(f"{what}: its data lies outside the payload (offset {offset}, {nbytes} bytes)")
    return shape


def _check_shape(name: str, shape: tuple[int, ...], expected: Any, label: str, where: str) -> None:
    if expected is not None and tuple(expected) != shape:
        raise ArtifactError(f"{where}: tensor {name!r} has shape {list(shape)}; {label} {list(expected)}")


def decode_payload(
    data: bytes | bytearray | memoryview,
    *,
    spec: Mapping[str, TensorSpec] | None,
    dtype: str,
    where: str,
    declared: Mapping[str, Any] | None = None,
    load_values: bool = True,
) -> dict[str, np.ndarray]:
    """Walk verified HDF5 payload bytes link by link and return their tensors (empty if not ``load_values``).

    ``spec`` fixes names and shapes (None: any names, as for ``inspect``); ``declared`` is the manifest's
    ``tensors`` table (name -> shape), checked the same way when given.
    """
    import h5py
    from h5py import h5i, h5l, h5o

    if dtype not in DTYPES:
        raise ArtifactError(f"{where}: manifest dtype {dtype!r}; expected float32 or float16")
    if spec is not None:
        for name, tensor_spec in spec.items():
            if dtype not in _ACCEPTS.get(tensor_spec.dtype, ()):
                raise ArtifactError(f"{where}: tensor {name!r} must be {tensor_spec.dtype}, the payload is {dtype}")
    size = len(memoryview(data))
    tensors: dict[str, np.ndarray] = {}
    seen: list[str] = []
    extents: list[tuple[int, int, str]] = []
    try:
        with h5py.File(_MemoryFile(data), "r") as f:
            root = f.id
            if f.userblock_size:
                raise ArtifactError(f"{where}: the payload has a {f.userblock_size}-byte user block; expected none")
            if f.attrs.keys():
                raise ArtifactError(f"{where}: the payload root carries attributes; expected none")
            count = root.get_num_objs()
            if count > _MAX_TENSORS:
                raise ArtifactError(f"{where}: the payload has {count} entries; at most {_MAX_TENSORS} allowed")
            for name in f:  # link names only; nothing is followed here
                link = root.links.get_info(name.encode("utf-8"))
                if link.type != h5l.TYPE_HARD:
                    raise ArtifactError(f"{where}: tensor {name!r} is {_link_kind(link.type)}; only hard links allowed")
                obj = h5o.open(root, name.encode("utf-8"))
                if h5i.get_type(obj) != h5i.DATASET:
                    found = "a group (nested entries are not allowed)" if h5i.get_type(obj) == h5i.GROUP else "not a dataset"
                    raise ArtifactError(f"{where}: entry {name!r} is {found}; expected a tensor dataset at the root")
                if spec is not None and name not in spec:
                    raise ArtifactError(f"{where}: unexpected tensor {name!r} (not in the model's tensor spec)")
                if declared is not None and name not in declared:
                    raise ArtifactError(f"{where}: tensor {name!r} is not listed in the manifest")
                dset = h5py.Dataset(obj)
                shape = _check_dataset(dset, name, dtype, size, where)
                _check_shape(name, shape, spec[name].shape if spec is not None else None, "the model expects", where)
                _check_shape(name, shape, declared.get(name) if declared is not None else None, "the manifest lists", where)
                seen.append(name)
                extents.append((dset.id.get_offset() or 0, math.prod(shape) * DTYPES[dtype].itemsize, name))
                if load_values:
                    tensors[name] = _tensor_view(data, extents[-1][0], shape, DTYPES[dtype])
                    _spot_check(dset, tensors[name], name, where)
                    check_finite(tensors[name], name, where)
    except ArtifactError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, UnicodeError) as exc:
        raise ArtifactError(f"{where}: the payload is not a valid tensor HDF5 file ({exc})") from None
    _check_disjoint(extents, where)
    for label, wanted in (("the model's tensor spec", spec), ("the manifest", declared)):
        if wanted is not None:
            missing = sorted(set(wanted) - set(seen))
            if missing:
                raise ArtifactError(f"{where}: tensor {missing[0]!r} is missing ({len(missing)} of {label} absent)")
    return tensors


def _tensor_view(data: Any, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return the tensor stored at ``offset`` as a view of the payload buffer (a copy if unaligned or read-only).

    The dataset was checked to be contiguous, unfiltered, IEEE little-endian and exactly this many bytes
    inside the buffer, so these bytes are what libhdf5 itself would return, without a second copy.
    """
    count = math.prod(shape)
    if count == 0:
        return np.zeros(shape, dtype=dtype)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    if not (array.flags.writeable and array.flags.aligned):
        array = array.copy()
    return array


def _spot_check(dset: Any, array: np.ndarray, name: str, where: str) -> None:
    """Compare the first and last element of the view with what libhdf5 reads (guards the offset logic)."""
    if not array.size:
        return
    for flat_index in {0, array.size - 1}:
        index = np.unravel_index(flat_index, array.shape) if array.ndim else ()
        if np.asarray(dset[index]).tobytes() != np.asarray(array[index]).tobytes():
            raise ArtifactError(f"{where}: tensor {name!r}: its stored bytes do not match what HDF5 reads")


def _check_disjoint(extents: list[tuple[int, int, str]], where: str) -> None:
    """Refuse two tensors sharing bytes (each would silently change with the other)."""
    end, previous = 0, ""
    for offset, nbytes, name in sorted(e for e in extents if e[1]):
        if offset < end:
            raise ArtifactError(f"{where}: tensors {previous!r} and {name!r} overlap in the payload")
        end, previous = offset + nbytes, name


_FINITE_CHUNK = 1 << 20


def check_finite(array: np.ndarray, name: str, where: str) -> None:
    """Raise unless every value is finite.

    float32: min/max propagate NaN and expose +-Inf in one fast pass each without a tensor-sized mask;
    float16 reductions are slow in NumPy, so it is checked with ``isfinite`` over 1 Mi-element chunks.
    """
    if not array.size:
        return
    flat = array.reshape(-1)
    if array.dtype.itemsize >= 4:
        ok = bool(np.isfinite(flat.min()) and np.isfinite(flat.max()))
    else:
        ok = all(np.isfinite(flat[i : i + _FINITE_CHUNK]).all() for i in range(0, flat.size, _FINITE_CHUNK))
    if not ok:
        bad = int(np.count_nonzero(~np.isfinite(flat)))
        raise ArtifactError(f"{where}: tensor {name!r} holds {bad} NaN/Inf value(s); expected finite numbers")


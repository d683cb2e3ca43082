"""Signed artifact files (``*.fedseg``): the only module that signs, verifies, reads or writes them.

Layout (DESIGN.md §4.3)::

    b"FEDSEG\\x00\\x01"    8-byte magic + format version
    uint32 LE H            header length, 1 <= H <= MAX_HEADER_BYTES
    H bytes                canonical JSON {"key_id": ..., "manifest": {...}, "signature": "<base64>"}
    payload                HDF5 file bytes: one contiguous, uncompressed dataset per tensor at the root

The signature is Ed25519 over ``SIGNING_CONTEXT + canonical_json(manifest)``; the manifest carries the
payload's SHA-256 and length. Reading checks, in this order, and stops at the first failure: the size
limit (before reading a byte), magic, header length, canonical header, key id among the plan members,
that key being the claimed signer (and the signer's role fitting the kind: globals come from the
coordinator, updates from sites), the signature, the federation/plan binding, the expected kind, the
payload length and digest; only then is the HDF5 opened, from those verified bytes in memory, and walked
link by link: hard links to root datasets only, contiguous storage of exactly the declared size, no
filters, no external or virtual storage, no attributes, IEEE little-endian float32/float16 as the manifest
says, exactly the expected names and shapes, finite values. Any failure raises ``ArtifactError`` (or its
subclasses ``SignatureError``/``BindingError``) naming the file and the tensor, and nothing is returned.

The payload is signed bytes from a member; a compromised member can still hand the HDF5 library a
hostile file, so the walk above trusts nothing in it beyond what libhdf5 itself must parse to list links.
Never pickle, never ``torch.load``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import io
import json
import logging
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Member, Plan
from fedseg.fsutil import atomic_write_bytes
from fedseg.hashing import canonical_json
from fedseg.tensorspec import TensorSpec

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "SIGNING_CONTEXT",
    "Artifact",
    "Envelope",
    "Kind",
    "TensorSpec",
    "decode_payload",
    "encode_payload",
    "read_artifact",
    "read_envelope_unverified",
    "read_manifest_unverified",
    "write_artifact",
]

log = logging.getLogger(__name__)

MAGIC = b"FEDSEG\x00\x01"
MAX_HEADER_BYTES = 1 << 20
DEFAULT_MAX_FILE_BYTES = 4 << 30
SIGNING_CONTEXT = b"fedseg-manifest-v1\x00"
FORMAT_VERSION = 1

_PREFIX = len(MAGIC) + 4
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_TENSORS = 100_000
# The HDF5 writer settings are fixed so identical inputs give byte-identical payloads (aggregation reruns).
_LIBVER = ("v110", "v110")
_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
# A spec's dtype names a float model parameter; an artifact may carry it at reduced precision.
_ACCEPTS = {"float32": ("float32", "float16"), "float16": ("float16",)}


class Kind(str, enum.Enum):
    """What an artifact holds: a global model (coordinator) or a site's update."""

    GLOBAL = "global"
    UPDATE = "update"


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its manifest, tensors (empty when not loaded), signer and path."""

    manifest: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(repr=False)
    signer: Member
    path: Path | None

    @property
    def digest(self) -> str:
        """Return the payload SHA-256; children of a global name it as their ``parent_sha256``."""
        return str(self.manifest["payload_sha256"])

    @property
    def kind(self) -> Kind:
        return Kind(self.manifest["kind"])

    @property
    def round(self) -> int:
        return int(self.manifest["round"])


@dataclass(frozen=True)
class Envelope:
    """The parsed, unverified outside of an artifact file."""

    manifest: dict[str, Any]
    key_id: str
    signature: str
    payload_offset: int
    payload_length: int
    file_size: int


# --------------------------------------------------------------------------------------------- payload


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise ArtifactError(f"{where}: tensor name {name!r} must be a non-empty string without '/' or NUL")
    return name


def _payload_dtype(tensors: Mapping[str, np.ndarray], where: str) -> str:
    kinds = {np.asarray(t).dtype for t in tensors.values()}
    names = {d.name for d in kinds}
    if len(names) != 1 or (names - set(_DTYPES)):
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
            dtype = _DTYPES[array.dtype.name]
            f.create_dataset(_check_name(name, "payload"), data=array.astype(dtype, copy=False), track_times=False)
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
    nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
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

    if dtype not in _DTYPES:
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
                extents.append((dset.id.get_offset() or 0, math.prod(shape) * _DTYPES[dtype].itemsize, name))
                if load_values:
                    tensors[name] = _tensor_view(data, extents[-1][0], shape, _DTYPES[dtype])
                    _spot_check(dset, tensors[name], name, where)
                    _check_finite(tensors[name], name, where)
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


def _check_finite(array: np.ndarray, name: str, where: str) -> None:
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


# -------------------------------------------------------------------------------------------- envelope


def _signed_message(manifest: Mapping[str, Any]) -> bytes:
    return SIGNING_CONTEXT + canonical_json(manifest)


def _write_envelope(path: Path, manifest: Mapping[str, Any], payload: bytes, key: PrivateKey,
                    *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
    """Sign ``manifest`` as given and write magic, header and ``payload`` atomically (no checks on them)."""
    try:
        message = _signed_message(manifest)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: the manifest is not plain JSON data ({exc})") from None
    header = canonical_json({
        "manifest": manifest,
        "key_id": key.key_id,
        "signature": base64.b64encode(key.sign(message)).decode("ascii"),
    })
    if len(header) > MAX_HEADER_BYTES:
        raise ArtifactError(f"{path}: the header is {len(header)} bytes; at most {MAX_HEADER_BYTES} allowed")
    total = _PREFIX + len(header) + len(payload)
    if total > max_bytes:
        raise ArtifactError(f"{path}: the artifact would be {total} bytes; the limit is {max_bytes}")

    def write(fh: BinaryIO) -> None:
        fh.write(MAGIC)
        fh.write(struct.pack("<I", len(header)))
        fh.write(header)
        fh.write(payload)

    atomic_write_bytes(Path(path), write)


def _software() -> dict[str, str | None]:
    from importlib import metadata

    from fedseg import __version__

    try:
        torch_version: str | None = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {"fedseg": __version__, "torch": torch_version}


def _check_role(signer: str, kind: str, plan: Plan, where: str) -> None:
    """Globals come from the coordinator, updates from sites."""
    if kind == Kind.GLOBAL.value and signer != plan.coordinator.id:
        raise SignatureError(f"{where}: a global model must be signed by coordinator "
                             f"{plan.coordinator.id!r}, found signer {signer!r}")
    if kind == Kind.UPDATE.value and signer not in {s.id for s in plan.sites}:
        raise SignatureError(f"{where}: an update must be signed by a member site, found signer {signer!r}")


def write_artifact(
    path: Path,
    *,
    manifest: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    key: PrivateKey,
    plan: Plan | None = None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Artifact:
    """Encode ``tensors``, complete and sign ``manifest`` with ``key``, and write ``path`` atomically.

    The caller's manifest holds kind, round, signer, parent and the rest; this fills ``payload_sha256``,
    ``payload_bytes``, ``dtype``, ``tensors`` (name -> shape), ``software``, ``format_version``,
    ``created_at`` (kept when given, so reruns are byte-identical) and, with a plan, ``federation_id`` and
    ``plan_sha256`` after checking that ``key`` is the plan key of the member named ``signer``.
    """
    path = Path(path)
    where = str(path)
    kind, signer = manifest.get("kind"), manifest.get("signer")
    if kind not in {k.value for k in Kind}:
        raise ArtifactError(f"{where}: manifest kind must be 'global' or 'update', got {kind!r}")
    if not isinstance(signer, str):
        raise ArtifactError(f"{where}: the manifest must name its signer (a member id), got {signer!r}")
    rnd = manifest.get("round")
    if not isinstance(rnd, int) or isinstance(rnd, bool) or rnd < 0:
        raise ArtifactError(f"{where}: manifest round must be an integer >= 0, got {rnd!r}")
    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        array = np.asarray(value, order="C")  # ascontiguousarray would turn 0-d into 1-d
        if array.dtype.name in _DTYPES:
            array = array.astype(_DTYPES[array.dtype.name], copy=False)
        arrays[_check_name(name, where)] = array
    if not arrays:
        raise ArtifactError(f"{where}: an artifact needs at least one tensor")
    dtype = _payload_dtype(arrays, where)
    for name, array in arrays.items():
        if array.size:
            _check_finite(array, name, where)

    full = dict(manifest)
    if plan is not None:
        member = next((m for m in plan.members if m.id == signer), None)
        if member is None:
            raise SignatureError(f"{where}: signer {signer!r} is not a member of plan {plan.name!r}")
        if member.key_id != key.key_id:
            raise SignatureError(f"{where}: key {key.key_id} is not the plan key of {signer!r} ({member.key_id})")
        _check_role(signer, kind, plan, where)
        full["federation_id"] = plan.federation_id
        full["plan_sha256"] = plan.sha256
        signer_member = member
    else:
        signer_member = Member(signer, key.public_key)
    payload = encode_payload(arrays)
    full.update(
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_bytes=len(payload),
        dtype=dtype,
        tensors={name: list(arrays[name].shape) for name in sorted(arrays)},
        software=_software(),
        format_version=FORMAT_VERSION,
    )
    full.setdefault("created_at", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _write_envelope(path, full, payload, key, max_bytes=max_bytes)
    log.debug("wrote %s (%d payload bytes, %d tensors)", path, len(payload), len(arrays))
    return Artifact(manifest=full, tensors=arrays, signer=signer_member, path=path)


# --------------------------------------------------------------------------------------------- reading


def _reject_constant(token: str) -> None:
    raise ValueError(f"non-finite number {token}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _what_is(prefix: bytes) -> str:
    if prefix.startswith(_HDF5_SIGNATURE):
        return "a bare HDF5 file"
    if prefix[:1] == b"\x80" or prefix.startswith(b"PK\x03\x04"):
        return "a pickle/torch checkpoint (fedseg never unpickles received files)"
    if prefix.startswith(MAGIC[:7]):
        return f"fedseg format version {prefix[7]} (this fedseg reads version {MAGIC[7]})"
    return "not a fedseg artifact"


def _open_envelope(path: Path, fh: BinaryIO, size: int, max_bytes: int) -> Envelope:
    where = str(path)
    if size == 0:
        raise ArtifactError(f"{where}: the file is empty; expected a fedseg artifact")
    if size > max_bytes:
        raise ArtifactError(f"{where}: the file is {size} bytes; the limit is {max_bytes} (far above any fedseg "
                            "model: is this the right file?)")
    prefix = fh.read(_PREFIX)
    if len(prefix) < len(MAGIC):
        if MAGIC.startswith(prefix):
            raise ArtifactError(f"{where}: truncated inside the magic ({len(prefix)} of {len(MAGIC)} bytes)")
        raise ArtifactError(f"{where}: bad magic; the file is {_what_is(prefix)}")
    if prefix[: len(MAGIC)] != MAGIC:
        raise ArtifactError(f"{where}: bad magic; the file is {_what_is(prefix)}")
    if len(prefix) < _PREFIX:
        raise ArtifactError(f"{where}: truncated inside the header length field")
    (length,) = struct.unpack("<I", prefix[len(MAGIC) :])
    if length == 0 or length > MAX_HEADER_BYTES:
        raise ArtifactError(f"{where}: header length {length}; expected 1..{MAX_HEADER_BYTES} bytes")
    if _PREFIX + length > size:
        raise ArtifactError(f"{where}: truncated inside the header ({size - _PREFIX} of {length} bytes present)")
    raw = fh.read(length)
    if len(raw) != length:
        raise ArtifactError(f"{where}: truncated inside the header (file changed while reading)")
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
        canonical = canonical_json(header)
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{where}: the header is not valid JSON ({exc})") from None
    if canonical != raw:
        raise ArtifactError(f"{where}: the header is not canonical JSON (sorted keys, no spaces)")
    if not isinstance(header, dict) or set(header) != {"manifest", "key_id", "signature"}:
        found = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise ArtifactError(f"{where}: the header must hold exactly manifest, key_id, signature; found {found}")
    manifest, key_id, signature = header["manifest"], header["key_id"], header["signature"]
    if not isinstance(manifest, dict) or not isinstance(key_id, str) or not isinstance(signature, str):
        raise ArtifactError(f"{where}: header fields have the wrong types (manifest object, key_id/signature strings)")
    return Envelope(manifest, key_id, signature, _PREFIX + length, size - _PREFIX - length, size)


def _stat_size(path: Path) -> int:
    try:
        st = path.stat()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the artifact ({exc.strerror})") from None
    if not path.is_file():
        raise ArtifactError(f"{path}: expected a regular file")
    return st.st_size


def read_envelope_unverified(path: Path, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Envelope:
    """Parse magic and header without verifying anything; for display only (``fedseg inspect``)."""
    path = Path(path)
    size = _stat_size(path)
    with open(path, "rb") as fh:
        return _open_envelope(path, fh, size, max_bytes)


def read_manifest_unverified(path: Path) -> dict[str, Any]:
    """Return the manifest WITHOUT checking signature or payload; never trust it for a decision."""
    return read_envelope_unverified(path).manifest


def _verify_manifest(path: Path, env: Envelope, plan: Plan, kind: Kind | None) -> Member:
    where = str(path)
    manifest = env.manifest
    member = plan.member_by_key_id(env.key_id)
    if member is None:
        raise SignatureError(f"{where}: signed by unknown key {env.key_id}; it is not a member key of plan "
                             f"{plan.name!r}")
    if manifest.get("signer") != member.id:
        raise SignatureError(f"{where}: the manifest claims signer {manifest.get('signer')!r} but key "
                             f"{env.key_id} belongs to {member.id!r}")
    try:
        signature = base64.b64decode(env.signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: the signature is not valid base64") from None
    if len(signature) != 64 or not member.public_key.verify(signature, _signed_message(manifest)):
        raise SignatureError(f"{where}: the Ed25519 signature by {member.id!r} does not verify; the manifest "
                             "or signature was altered")
    if manifest.get("federation_id") != plan.federation_id or manifest.get("plan_sha256") != plan.sha256:
        raise BindingError(f"{where}: made for federation {manifest.get('federation_id')} / plan "
                           f"{str(manifest.get('plan_sha256'))[:12]}, expected {plan.federation_id} / plan "
                           f"{plan.sha256[:12]} ({plan.name!r})")
    found_kind = manifest.get("kind")
    if found_kind not in {k.value for k in Kind}:
        raise ArtifactError(f"{where}: manifest kind {found_kind!r}; expected 'global' or 'update'")
    if kind is not None and found_kind != Kind(kind).value:
        raise BindingError(f"{where}: expected a {Kind(kind).value} artifact, this is a {found_kind}")
    _check_role(member.id, found_kind, plan, where)
    digest, nbytes, dtype = manifest.get("payload_sha256"), manifest.get("payload_bytes"), manifest.get("dtype")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ArtifactError(f"{where}: manifest payload_sha256 must be 64 lowercase hex digits")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ArtifactError(f"{where}: manifest payload_bytes must be a non-negative integer, got {nbytes!r}")
    if dtype not in _DTYPES:
        raise ArtifactError(f"{where}: manifest dtype {dtype!r}; expected float32 or float16")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{where}: manifest format_version {manifest.get('format_version')!r}; "
                            f"expected {FORMAT_VERSION}")
    declared = manifest.get("tensors")
    if declared is not None and not (isinstance(declared, dict) and all(
            isinstance(s, list) and all(isinstance(n, int) and n >= 0 for n in s) for s in declared.values())):
        raise ArtifactError(f"{where}: manifest tensors must map names to shapes (lists of integers)")
    return member


def read_artifact(
    path: Path,
    plan: Plan,
    *,
    kind: Kind | None = None,
    spec: Mapping[str, TensorSpec] | None = None,
    load_tensors: bool = True,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    buffer: np.ndarray | None = None,
) -> Artifact:
    """Verify ``path`` against ``plan`` and return it; raise and return nothing on any failure.

    ``kind`` and ``spec`` (tensor name -> TensorSpec) add checks. With ``load_tensors=False`` every
    check runs, including the payload digest and the HDF5 structure walk, except reading the values
    (so finiteness is not checked) and ``tensors`` is empty.

    The file is read once into one writable buffer, hashed in place, and the returned arrays are
    disjoint, aligned, writable views of it (no second copy; peak memory ~1x the payload). Keeping any
    one tensor alive keeps that buffer alive; copy a tensor if you keep it alone for long.

    ``buffer`` (a 1-D uint8 array) lets a caller that reads many artifacts in turn reuse one buffer
    instead of faulting in fresh pages for every file: the payload is read into its start when it fits
    (else into a new buffer). The returned tensors then view ``buffer``, so the next read into it
    overwrites them: drop them first.
    """
    path = Path(path)
    where = str(path)
    size = _stat_size(path)
    with open(path, "rb") as fh:
        env = _open_envelope(path, fh, size, max_bytes)
        member = _verify_manifest(path, env, plan, kind)
        manifest = env.manifest
        if env.payload_length != manifest["payload_bytes"]:
            raise ArtifactError(f"{where}: the payload is {env.payload_length} bytes, the manifest declares "
                                f"{manifest['payload_bytes']} (truncated or trailing bytes)")
        # One uninitialized writable buffer (no memset pass): the returned tensors are zero-copy views of it.
        if (buffer is not None and buffer.dtype == np.uint8 and buffer.ndim == 1 and buffer.flags.c_contiguous
                and buffer.flags.writeable and buffer.size >= env.payload_length):
            payload = buffer[: env.payload_length]
        else:
            payload = np.empty(env.payload_length, dtype=np.uint8)
        if fh.readinto(memoryview(payload)) != env.payload_length or fh.read(1):
            raise ArtifactError(f"{where}: the file changed while it was read")
    if hashlib.sha256(payload).hexdigest() != manifest["payload_sha256"]:
        raise ArtifactError(f"{where}: the payload SHA-256 does not match the signed manifest (payload altered)")
    tensors = decode_payload(payload, spec=spec, dtype=manifest["dtype"], where=where,
                             declared=manifest.get("tensors"), load_values=load_tensors)
    log.debug("verified %s: %s round %s by %s", path, manifest["kind"], manifest.get("round"), member.id)
    return Artifact(manifest=manifest, tensors=tensors, signer=member, path=path)

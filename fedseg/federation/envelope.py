"""The artifact envelope: magic, header length and the canonical JSON header, around the payload bytes.

Layout (DESIGN.md §4.3)::

    b"FEDSEG\\x00\\x01"    8-byte magic + format version
    uint32 LE H            header length, 1 <= H <= MAX_HEADER_BYTES
    H bytes                canonical JSON {"key_id": ..., "manifest": {...}, "signature": "<base64>"}
    payload                HDF5 file bytes (see :mod:`fedseg.federation.payload`)

Opening checks, in this order, and stops at the first failure: the size limit (before reading a byte),
magic, header length, that the header is canonical JSON of exactly those three fields. Nothing here
verifies a signature (:mod:`fedseg.federation.signing`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fedseg.errors import ArtifactError
from fedseg.fsutil import atomic_write_bytes
from fedseg.hashing import canonical_json

__all__ = ["DEFAULT_MAX_FILE_BYTES", "MAGIC", "MAX_HEADER_BYTES", "Envelope", "open_envelope",
           "read_envelope_unverified", "read_manifest_unverified", "stat_size", "write_envelope"]

MAGIC = b"FEDSEG\x00\x01"
MAX_HEADER_BYTES = 1 << 20
DEFAULT_MAX_FILE_BYTES = 4 << 30

_PREFIX = len(MAGIC) + 4
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Envelope:
    """The parsed, unverified outside of an artifact file."""

    manifest: dict[str, Any]
    key_id: str
    signature: str
    payload_offset: int
    payload_length: int
    file_size: int



def write_envelope(path: Path, manifest: Any, key_id: str, signature: str, payload: bytes,
                   *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
    """Write magic, the header of ``manifest``/``key_id``/``signature`` and ``payload`` atomically."""
    header = canonical_json({"manifest": manifest, "key_id": key_id, "signature": signature})
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


def open_envelope(path: Path, fh: BinaryIO, size: int, max_bytes: int) -> Envelope:
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


def stat_size(path: Path) -> int:
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
    size = stat_size(path)
    with open(path, "rb") as fh:
        return open_envelope(path, fh, size, max_bytes)


def read_manifest_unverified(path: Path) -> dict[str, Any]:
    """Return the manifest WITHOUT checking signature or payload; never trust it for a decision."""
    return read_envelope_unverified(path).manifest


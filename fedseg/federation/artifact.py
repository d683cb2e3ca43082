"""Signed artifact files (``*.fedseg``): the ONE public way to read and write them.

An artifact is an envelope (:mod:`~fedseg.federation.envelope`: magic, header length, canonical JSON
header holding the manifest, key id and signature) around a payload (:mod:`~fedseg.federation.payload`:
HDF5 bytes, one dataset per tensor). The signature (:mod:`~fedseg.federation.signing`) covers the
manifest (:mod:`~fedseg.federation.manifest`), which carries the payload's SHA-256 and length.

Reading checks, in this order, and stops at the first failure: the size limit (before reading a byte),
magic, header length, canonical header, key id among the plan members, that key being the claimed signer
(and the signer's role fitting the kind), the signature, the federation/plan binding, the expected kind,
the manifest's payload fields, the payload length and digest; only then is the HDF5 opened, from those
verified bytes in memory, and walked link by link. Any failure raises ``ArtifactError`` (or its
subclasses ``SignatureError``/``BindingError``) naming the file and the tensor, and nothing is returned.

The payload is signed bytes from a member; a compromised member can still hand the HDF5 library a
hostile file, so the walk trusts nothing in it beyond what libhdf5 itself must parse to list links.
Never pickle, never ``torch.load``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import ArtifactError
from fedseg.federation.envelope import (
    DEFAULT_MAX_FILE_BYTES,
    MAGIC,
    MAX_HEADER_BYTES,
    Envelope,
    open_envelope,
    read_envelope_unverified,
    read_manifest_unverified,
    stat_size,
    write_envelope,
)
from fedseg.federation.keys import PrivateKey
from fedseg.federation.manifest import GlobalManifest, Kind, UpdateManifest, format_timestamp, manifest_from_dict
from fedseg.federation.payload import DTYPES, check_finite, check_name, decode_payload, encode_payload, payload_dtype
from fedseg.federation.plan import Member, Plan
from fedseg.federation.signing import SIGNING_CONTEXT, member_for_key, sign_manifest, verify_manifest_signature
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

FORMAT_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its signed manifest, tensors (empty when not loaded), signer and path.

    ``manifest`` is the signed JSON exactly as in the file (the coordinator screens updates' fields from
    it, giving each rejection its reason); :attr:`typed_manifest` parses it strictly.
    """

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

    @property
    def typed_manifest(self) -> GlobalManifest | UpdateManifest:
        """Return the manifest parsed and validated (ArtifactError naming the file when a field is off)."""
        return manifest_from_dict(self.manifest, str(self.path))


def _write_envelope(path: Path, manifest: Mapping[str, Any], payload: bytes, key: PrivateKey,
                    *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
    """Sign ``manifest`` as given and write magic, header and ``payload`` atomically (no checks on them)."""
    signature = sign_manifest(manifest, key, str(path))
    write_envelope(path, manifest, key.key_id, signature, payload, max_bytes=max_bytes)


def _software() -> dict[str, str | None]:
    from importlib import metadata

    from fedseg import __version__

    try:
        torch_version: str | None = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {"fedseg": __version__, "torch": torch_version}



def write_artifact(
    path: Path,
    *,
    manifest: GlobalManifest | UpdateManifest | Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    key: PrivateKey,
    plan: Plan | None = None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Artifact:
    """Encode ``tensors``, complete and sign ``manifest`` with ``key``, and write ``path`` atomically.

    ``manifest`` comes from a builder of :mod:`fedseg.federation.manifest` (or, in tests, as plain data)
    and holds kind, round, signer, parent and the rest; this fills ``payload_sha256``,
    ``payload_bytes``, ``dtype``, ``tensors`` (name -> shape), ``software``, ``format_version``,
    ``created_at`` (kept when given, so reruns are byte-identical) and, with a plan, ``federation_id``,
    ``plan_sha256`` and (from version 2) ``plan_version`` of the plan version in force for the round, after
    checking that ``key`` is that version's key of the member named ``signer``.
    """
    if isinstance(manifest, (GlobalManifest, UpdateManifest)):
        manifest = manifest.to_dict()
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
        if array.dtype.name in DTYPES:
            array = array.astype(DTYPES[array.dtype.name], copy=False)
        arrays[check_name(name, where)] = array
    if not arrays:
        raise ArtifactError(f"{where}: an artifact needs at least one tensor")
    dtype = payload_dtype(arrays, where)
    for name, array in arrays.items():
        if array.size:
            check_finite(array, name, where)

    full = dict(manifest)
    if plan is not None:
        governing = plan.in_force(rnd)  # the plan version of the artifact's round (the chain's, see Plan.in_force)
        signer_member = member_for_key(governing, signer, kind, key, where)
        full["federation_id"] = plan.federation_id
        full["plan_sha256"] = governing.sha256
        if governing.version > 1:
            full["plan_version"] = governing.version
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
    full.setdefault("created_at", format_timestamp(datetime.now(timezone.utc)))
    _write_envelope(path, full, payload, key, max_bytes=max_bytes)
    log.debug("wrote %s (%d payload bytes, %d tensors)", path, len(payload), len(arrays))
    return Artifact(manifest=full, tensors=arrays, signer=signer_member, path=path)


def _check_payload_fields(where: str, manifest: Mapping[str, Any]) -> None:
    """Check the manifest fields that describe the payload, before a byte of it is read."""
    digest, nbytes, dtype = manifest.get("payload_sha256"), manifest.get("payload_bytes"), manifest.get("dtype")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ArtifactError(f"{where}: manifest payload_sha256 must be 64 lowercase hex digits")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ArtifactError(f"{where}: manifest payload_bytes must be a non-negative integer, got {nbytes!r}")
    if dtype not in DTYPES:
        raise ArtifactError(f"{where}: manifest dtype {dtype!r}; expected float32 or float16")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{where}: manifest format_version {manifest.get('format_version')!r}; "
                            f"expected {FORMAT_VERSION}")
    declared = manifest.get("tensors")
    if declared is not None and not (isinstance(declared, dict) and all(
            isinstance(s, list) and all(isinstance(n, int) and n >= 0 for n in s) for s in declared.values())):
        raise ArtifactError(f"{where}: manifest tensors must map names to shapes (lists of integers)")


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
    size = stat_size(path)
    with open(path, "rb") as fh:
        env = open_envelope(path, fh, size, max_bytes)
        member = verify_manifest_signature(where, env.manifest, env.key_id, env.signature, plan, kind)
        manifest = env.manifest
        _check_payload_fields(where, manifest)
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

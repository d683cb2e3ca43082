"""Signed JSON documents: the coordinator's federation result and the sites' score reports on a round store.

A document file holds canonical JSON ``{"document": {...}, "key_id": "...", "signature": "<base64>"}``.
The signature is Ed25519 over :data:`DOCUMENT_CONTEXT` + canonical JSON of the document, a context other
than the artifact manifests' (:mod:`fedseg.federation.signing`), so no signature can be moved between a
document and an artifact. The document states its ``kind``, ``signer``, ``federation_id`` and
``plan_sha256`` with ``plan_version`` (absent = 1): the plan version its signer held. Reading checks, in
this order: the size (at most :data:`MAX_DOCUMENT_BYTES`), that the file is JSON of exactly those three
fields, the federation/plan binding (any version of the reader's verified chain, so a plan update made
after the document was signed does not void it), that the key is a member's of that version, not revoked
by any version (documents are signed at the federation's end), and the claimed signer's, the signature,
the kind, and the signer's role in that version: a result comes from the coordinator, a score from a
site. Only then is the document returned; what it says beyond that is the caller's to check (the round
and digest of the global it names, for instance).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.federation.signing import bound_version, revocation_of
from fedseg.fsutil import atomic_write_bytes
from fedseg.hashing import canonical_json

__all__ = ["DOCUMENT_CONTEXT", "MAX_DOCUMENT_BYTES", "DocKind", "read_document", "write_document"]

DOCUMENT_CONTEXT = b"fedseg-document-v1\x00"
MAX_DOCUMENT_BYTES = 1 << 20


class DocKind(str, enum.Enum):
    """What a signed document is: the federation's result (coordinator) or a site's score of a global."""

    RESULT = "result"
    SCORE = "score"


def _signer_id(plan: Plan, kind: DocKind, key_id: str, where: str) -> str:
    member = plan.member_by_key_id(key_id)
    if member is None:
        raise SignatureError(f"{where}: signed by unknown key {key_id}; it is not a member key of plan {plan.name!r}")
    if kind is DocKind.RESULT and member.id != plan.coordinator.id:
        raise SignatureError(f"{where}: a result must be signed by coordinator {plan.coordinator.id!r}, "
                             f"found {member.id!r}")
    if kind is DocKind.SCORE and member not in plan.sites:
        raise SignatureError(f"{where}: a score must be signed by a member site, found {member.id!r}")
    return member.id


def write_document(path: Path, body: Mapping[str, Any], *, kind: DocKind, key: PrivateKey, plan: Plan) -> dict[str, Any]:
    """Sign ``body`` as a ``kind`` document of ``plan`` with ``key``, write it atomically; return the document."""
    where = str(path)
    signer = _signer_id(plan, kind, key.key_id, where)
    document = {**body, "kind": kind.value, "signer": signer, "federation_id": plan.federation_id,
                "plan_sha256": plan.sha256, **({"plan_version": plan.version} if plan.version > 1 else {})}
    try:
        message = DOCUMENT_CONTEXT + canonical_json(document)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{where}: the document is not plain JSON data ({exc})") from None
    signature = base64.b64encode(key.sign(message)).decode("ascii")
    atomic_write_bytes(Path(path), canonical_json({"document": document, "key_id": key.key_id,
                                                   "signature": signature}) + b"\n")
    return document


def read_document(path: Path, plan: Plan, kind: DocKind) -> dict[str, Any]:
    """Verify the signed document at ``path`` against ``plan`` (see the module docstring); return it."""
    path = Path(path)
    where = str(path)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise ArtifactError(f"{where}: a signed document must be under {MAX_DOCUMENT_BYTES} bytes")
        outer = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ArtifactError(f"{where}: cannot read the signed document ({exc.strerror})") from None
    except (UnicodeDecodeError, ValueError):
        raise ArtifactError(f"{where}: expected a signed JSON document, the file is not JSON") from None
    if (not isinstance(outer, dict) or set(outer) != {"document", "key_id", "signature"}
            or not isinstance(outer["document"], dict) or not isinstance(outer["key_id"], str)
            or not isinstance(outer["signature"], str)):
        raise ArtifactError(f"{where}: expected {{document, key_id, signature}} of a signed fedseg document")
    document, key_id = outer["document"], outer["key_id"]
    bound = bound_version(where, document, plan, plan.versions[-1])
    member = bound.member_by_key_id(key_id)
    if member is None:
        raise SignatureError(f"{where}: signed by unknown key {key_id}; it is not a member key of plan {plan.name!r} "
                             f"v{bound.version}")
    revoked = revocation_of(plan, key_id)
    if revoked is not None:
        raise SignatureError(f"{where}: signed by key {key_id} of {revoked.member!r}, revoked from round "
                             f"{revoked.from_round} (plan v{plan.versions[-1].version})")
    if document.get("signer") != member.id:
        raise SignatureError(f"{where}: the document claims signer {document.get('signer')!r} but key {key_id} "
                             f"belongs to {member.id!r}")
    try:
        raw = base64.b64decode(outer["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: the signature is not valid base64") from None
    if len(raw) != 64 or not member.public_key.verify(raw, DOCUMENT_CONTEXT + canonical_json(document)):
        raise SignatureError(f"{where}: the Ed25519 signature by {member.id!r} does not verify; the document or "
                             "signature was altered")
    if document.get("kind") != kind.value:
        raise BindingError(f"{where}: expected a {kind.value} document, this is a {document.get('kind')!r}")
    _signer_id(bound, kind, key_id, where)
    return document

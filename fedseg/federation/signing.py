"""Signing and verifying manifests, and who may sign what.

The signature is Ed25519 over ``SIGNING_CONTEXT + canonical_json(manifest)``, the manifest exactly as it
sits in the header (so files written by any earlier fedseg verify as long as their bytes are intact).
Verification checks, in this order: the key id is a plan member's, that member is the manifest's claimed
signer, the signature, the federation/plan binding, the kind (and the expected kind), and that the
signer's role fits it: globals come from the coordinator, updates from sites.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.manifest import Kind
from fedseg.federation.plan import Member, Plan
from fedseg.hashing import canonical_json

__all__ = ["SIGNING_CONTEXT", "check_role", "member_for_key", "sign_manifest", "signed_message",
           "verify_manifest_signature"]

SIGNING_CONTEXT = b"fedseg-manifest-v1\x00"


def signed_message(manifest: Mapping[str, Any]) -> bytes:
    """Return the bytes the signature covers."""
    return SIGNING_CONTEXT + canonical_json(manifest)


def sign_manifest(manifest: Mapping[str, Any], key: PrivateKey, where: str) -> str:
    """Return the base64 Ed25519 signature of ``manifest`` by ``key``."""
    try:
        message = signed_message(manifest)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{where}: the manifest is not plain JSON data ({exc})") from None
    return base64.b64encode(key.sign(message)).decode("ascii")


def check_role(signer: str, kind: str, plan: Plan, where: str) -> None:
    """Globals come from the coordinator, updates from sites."""
    if kind == Kind.GLOBAL.value and signer != plan.coordinator.id:
        raise SignatureError(f"{where}: a global model must be signed by coordinator "
                             f"{plan.coordinator.id!r}, found signer {signer!r}")
    if kind == Kind.UPDATE.value and signer not in {s.id for s in plan.sites}:
        raise SignatureError(f"{where}: an update must be signed by a member site, found signer {signer!r}")


def member_for_key(plan: Plan, signer: str, kind: str, key: PrivateKey, where: str) -> Member:
    """Return the plan member ``signer`` after checking that ``key`` is its plan key and its role fits."""
    member = next((m for m in plan.members if m.id == signer), None)
    if member is None:
        raise SignatureError(f"{where}: signer {signer!r} is not a member of plan {plan.name!r}")
    if member.key_id != key.key_id:
        raise SignatureError(f"{where}: key {key.key_id} is not the plan key of {signer!r} ({member.key_id})")
    check_role(signer, kind, plan, where)
    return member


def verify_manifest_signature(where: str, manifest: Mapping[str, Any], key_id: str, signature: str, plan: Plan,
                              kind: Kind | None) -> Member:
    """Verify the signed ``manifest`` against ``plan`` (see the module docstring); return the signer."""
    member = plan.member_by_key_id(key_id)
    if member is None:
        raise SignatureError(f"{where}: signed by unknown key {key_id}; it is not a member key of plan "
                             f"{plan.name!r}")
    if manifest.get("signer") != member.id:
        raise SignatureError(f"{where}: the manifest claims signer {manifest.get('signer')!r} but key "
                             f"{key_id} belongs to {member.id!r}")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: the signature is not valid base64") from None
    if len(raw) != 64 or not member.public_key.verify(raw, signed_message(manifest)):
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
    check_role(member.id, found_kind, plan, where)
    return member

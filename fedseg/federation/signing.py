"""Signing and verifying manifests, and who may sign what.

The signature is Ed25519 over ``SIGNING_CONTEXT + canonical_json(manifest)``, the manifest exactly as it
sits in the header (so files written by any earlier fedseg verify as long as their bytes are intact).
Verification checks, in this order: the key is not revoked for the artifact's round, the key id is a
member's in the plan version in force for that round (:meth:`Plan.in_force`: a site that joined at round
R signs from R on, a rotated-out or removed key no longer signs), that member is the manifest's claimed
signer, the signature, the federation/plan binding, the kind (and the expected kind), and that the
signer's role fits it: globals come from the coordinator, updates from sites.

The binding: an artifact names the plan version it was made under (``plan_version``, absent = 1) and
that version's hash; the version must be one of the verified chain's and not newer than the one in force
for the artifact's round (an older one is accepted: a site that had not yet fetched an update).
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
from fedseg.federation.plan_link import Revocation
from fedseg.hashing import canonical_json

__all__ = ["SIGNING_CONTEXT", "bound_version", "check_role", "member_for_key", "revocation_of", "revoked_for",
           "sign_manifest", "signed_message", "verify_manifest_signature"]

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


def revocation_of(plan: Plan, key_id: str) -> Revocation | None:
    """Return the revocation of ``key_id`` in ``plan``'s chain (the newest version keeps them all), else None."""
    tip = plan.versions[-1]
    return tip.link.revocation(key_id) if tip.link is not None else None


def revoked_for(plan: Plan, key_id: str, round_: int) -> Revocation | None:
    """Return the revocation of ``key_id`` in ``plan``'s chain when it covers ``round_``, else None."""
    revoked = revocation_of(plan, key_id)
    return revoked if revoked is not None and round_ >= revoked.from_round else None


def _key_refusal(where: str, plan: Plan, governing: Plan, key_id: str, round_: int) -> str:
    """Say why ``key_id`` may not sign an artifact of ``round_``: revoked, rotated out, not yet joined, unknown."""
    revoked = revoked_for(plan, key_id, round_)
    if revoked is not None:
        return (f"{where}: signed by key {key_id} of {revoked.member!r}, revoked from round {revoked.from_round} "
                f"(plan v{plan.versions[-1].version}); this artifact is for round {round_}")
    holders = [(v, m) for v in plan.versions for m in v.members if m.key_id == key_id]
    if not holders:
        return f"{where}: signed by unknown key {key_id}; it is not a member key of plan {plan.name!r}"
    version, member = holders[0]
    if version.from_round > round_:
        return (f"{where}: key {key_id} of {member.id!r} signs from round {version.from_round} on (plan "
                f"v{version.version}); this artifact is for round {round_}")
    return (f"{where}: key {key_id} of {member.id!r} is no longer a member key at round {round_} (plan "
            f"v{governing.version}, in force from round {governing.from_round}, rotated it out or removed the member)")


def bound_version(where: str, signed: Mapping[str, Any], plan: Plan, expected: Plan) -> Plan:
    """Return the version of ``plan``'s chain a signed manifest or document names; BindingError if none.

    It names the federation, ``plan_version`` (absent = 1) and that version's hash; the error names
    ``expected``, the version the reader would have taken.
    """
    claimed = signed.get("plan_version", 1)
    bound = next((v for v in plan.versions if v.version == claimed), None)
    if (signed.get("federation_id") != plan.federation_id or bound is None
            or signed.get("plan_sha256") != bound.sha256):
        raise BindingError(f"{where}: made for federation {signed.get('federation_id')} / plan "
                           f"{str(signed.get('plan_sha256'))[:12]} v{claimed}, expected {plan.federation_id} / plan "
                           f"{expected.sha256[:12]} v{expected.version} ({plan.name!r})")
    return bound


def _check_binding(where: str, manifest: Mapping[str, Any], plan: Plan, governing: Plan) -> None:
    """The artifact names a version of this chain, not newer than the one in force for its round."""
    bound = bound_version(where, manifest, plan, governing)
    if bound.version > governing.version:
        raise BindingError(f"{where}: made under plan v{bound.version}, which governs rounds from "
                           f"{bound.from_round} on; this artifact is for round {manifest.get('round')}")


def verify_manifest_signature(where: str, manifest: Mapping[str, Any], key_id: str, signature: str, plan: Plan,
                              kind: Kind | None) -> Member:
    """Verify the signed ``manifest`` against ``plan``'s chain (see the module docstring); return the signer."""
    round_ = manifest.get("round")
    if not isinstance(round_, int) or isinstance(round_, bool) or round_ < 0:
        raise ArtifactError(f"{where}: manifest round must be an integer >= 0, got {round_!r}")
    governing = plan.in_force(round_)
    member = governing.member_by_key_id(key_id)
    if member is None or revoked_for(plan, key_id, round_) is not None:
        raise SignatureError(_key_refusal(where, plan, governing, key_id, round_))
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
    _check_binding(where, manifest, plan, governing)
    found_kind = manifest.get("kind")
    if found_kind not in {k.value for k in Kind}:
        raise ArtifactError(f"{where}: manifest kind {found_kind!r}; expected 'global' or 'update'")
    if kind is not None and found_kind != Kind(kind).value:
        raise BindingError(f"{where}: expected a {Kind(kind).value} artifact, this is a {found_kind}")
    check_role(member.id, found_kind, governing, where)
    return member

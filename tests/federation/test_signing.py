"""Signing and verifying manifests, and the role rules, without any file."""

from __future__ import annotations

import pytest

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.manifest import Kind
from fedseg.federation.signing import (
    SIGNING_CONTEXT,
    check_role,
    member_for_key,
    sign_manifest,
    signed_message,
    verify_manifest_signature,
)
from fedseg.hashing import canonical_json


def _manifest(plan, **extra):
    return {"kind": "update", "round": 1, "signer": "site-a", "federation_id": plan.federation_id,
            "plan_sha256": plan.sha256, **extra}


def test_signed_message_is_context_plus_canonical_json() -> None:
    assert signed_message({"b": 1, "a": [1, 2]}) == SIGNING_CONTEXT + canonical_json({"a": [1, 2], "b": 1})


def test_sign_then_verify(plan, site_keys) -> None:
    m = _manifest(plan)
    key = site_keys["site-a"]
    sig = sign_manifest(m, key, "w")
    assert verify_manifest_signature("w", m, key.key_id, sig, plan, Kind.UPDATE).id == "site-a"
    with pytest.raises(SignatureError, match="does not verify"):
        verify_manifest_signature("w", {**m, "round": 2}, key.key_id, sig, plan, None)
    with pytest.raises(SignatureError, match="not valid base64"):
        verify_manifest_signature("w", m, key.key_id, "!!", plan, None)
    with pytest.raises(SignatureError, match="unknown key"):
        verify_manifest_signature("w", m, site_keys["outsider"].key_id, sig, plan, None)
    with pytest.raises(SignatureError, match="claims signer 'site-a' but key"):
        verify_manifest_signature("w", m, site_keys["site-b"].key_id, sig, plan, None)
    with pytest.raises(BindingError, match="expected a global artifact"):
        verify_manifest_signature("w", m, key.key_id, sig, plan, Kind.GLOBAL)
    other = plan.with_settings(rounds=plan.rounds + 1)
    with pytest.raises(BindingError, match="made for federation"):
        verify_manifest_signature("w", m, key.key_id, sig, other, None)


def test_sign_refuses_non_json(site_keys) -> None:
    with pytest.raises(ArtifactError, match="w: the manifest is not plain JSON"):
        sign_manifest({"x": float("nan")}, site_keys["site-a"], "w")


def test_roles(plan, site_keys) -> None:
    check_role("coordinator", "global", plan, "w")
    check_role("site-b", "update", plan, "w")
    with pytest.raises(SignatureError, match="signed by coordinator 'coordinator'"):
        check_role("site-a", "global", plan, "w")
    with pytest.raises(SignatureError, match="signed by a member site"):
        check_role("coordinator", "update", plan, "w")
    assert member_for_key(plan, "site-a", "update", site_keys["site-a"], "w").id == "site-a"
    with pytest.raises(SignatureError, match="not a member"):
        member_for_key(plan, "nobody", "update", site_keys["site-a"], "w")
    with pytest.raises(SignatureError, match="is not the plan key of 'site-a'"):
        member_for_key(plan, "site-a", "update", site_keys["site-b"], "w")

"""Signed JSON documents: sign, verify, and every refusal (tampering, unknown key, role, binding, kind)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.document import DocKind, read_document, write_document
from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.plan import Member, new_plan


@pytest.fixture
def fed(tmp_path: Path):  # noqa: ANN201
    for name in ("coord", "site-a", "outsider"):
        generate_keypair(name, tmp_path / "keys")
    plan = new_plan("doc-fed", Member("coord", load_public_key(tmp_path / "keys" / "coord.pub")),
                    [Member("site-a", load_public_key(tmp_path / "keys" / "site-a.pub"))])
    return plan, {n: load_private_key(tmp_path / "keys" / f"{n}.key") for n in ("coord", "site-a", "outsider")}


def test_round_trip_and_binding(tmp_path: Path, fed) -> None:  # noqa: ANN001
    plan, keys = fed
    doc = write_document(tmp_path / "r.json", {"round": 3, "sha256": "ab"}, kind=DocKind.RESULT, key=keys["coord"],
                         plan=plan)
    assert read_document(tmp_path / "r.json", plan, DocKind.RESULT) == doc
    assert doc["signer"] == "coord" and doc["plan_sha256"] == plan.sha256 and doc["kind"] == "result"
    with pytest.raises(BindingError, match="expected a score document"):
        read_document(tmp_path / "r.json", plan, DocKind.SCORE)
    other = replace(plan, federation_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(BindingError, match="made for federation"):
        read_document(tmp_path / "r.json", other, DocKind.RESULT)


def test_refusals(tmp_path: Path, fed) -> None:  # noqa: ANN001
    plan, keys = fed
    with pytest.raises(SignatureError, match="must be signed by coordinator"):
        write_document(tmp_path / "x.json", {}, kind=DocKind.RESULT, key=keys["site-a"], plan=plan)
    with pytest.raises(SignatureError, match="signed by a member site"):
        write_document(tmp_path / "x.json", {}, kind=DocKind.SCORE, key=keys["coord"], plan=plan)
    with pytest.raises(SignatureError, match="unknown key"):
        write_document(tmp_path / "x.json", {}, kind=DocKind.SCORE, key=keys["outsider"], plan=plan)
    write_document(tmp_path / "s.json", {"dice": {"WT": 0.5}}, kind=DocKind.SCORE, key=keys["site-a"], plan=plan)
    outer = json.loads((tmp_path / "s.json").read_text())
    outer["document"]["dice"]["WT"] = 0.9  # tampered
    (tmp_path / "t.json").write_text(json.dumps(outer))
    with pytest.raises(SignatureError, match="does not verify"):
        read_document(tmp_path / "t.json", plan, DocKind.SCORE)
    outer["document"]["signer"] = "coord"  # a claim that does not match the key
    (tmp_path / "t.json").write_text(json.dumps(outer))
    with pytest.raises(SignatureError, match="claims signer"):
        read_document(tmp_path / "t.json", plan, DocKind.SCORE)
    (tmp_path / "t.json").write_text("not json")
    with pytest.raises(ArtifactError, match="not JSON"):
        read_document(tmp_path / "t.json", plan, DocKind.SCORE)
    (tmp_path / "t.json").write_text(json.dumps({"document": {}}))
    with pytest.raises(ArtifactError, match="expected"):
        read_document(tmp_path / "t.json", plan, DocKind.SCORE)


def test_a_document_keeps_verifying_after_a_plan_update(tmp_path: Path, plan, site_keys, keydir) -> None:  # noqa: ANN001
    from tests._plan_chain import write_root, write_update

    fed = tmp_path / "fed"
    v1 = write_root(fed, plan)
    write_document(tmp_path / "r.json", {"round": 2}, kind=DocKind.RESULT, key=site_keys["coordinator"], plan=v1)
    write_document(tmp_path / "c.json", {"dice": None}, kind=DocKind.SCORE, key=site_keys["site-c"], plan=v1)
    generate_keypair("coord-2", keydir)
    new_coord = load_private_key(keydir / "coord-2.key")
    v2 = write_update(fed, v1, site_keys["coordinator"], from_round=4, rounds=12, coordinator_key=new_coord.public_key)
    assert read_document(tmp_path / "r.json", v2, DocKind.RESULT)["round"] == 2  # signed under v1, old key
    doc = write_document(tmp_path / "r2.json", {"round": 3}, kind=DocKind.RESULT, key=new_coord, plan=v2)
    assert doc["plan_version"] == 2 and read_document(tmp_path / "r2.json", v2, DocKind.RESULT) == doc
    with pytest.raises(BindingError, match="v2, expected"):
        read_document(tmp_path / "r2.json", v1, DocKind.RESULT)  # a reader that has not fetched v2
    v3 = write_update(fed, v2, new_coord, from_round=5, revoke=(site_keys["site-c"].key_id,))
    assert read_document(tmp_path / "r.json", v3, DocKind.RESULT)["round"] == 2
    with pytest.raises(SignatureError, match="of 'site-c', revoked from round 5"):
        read_document(tmp_path / "c.json", v3, DocKind.SCORE)

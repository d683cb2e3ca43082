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

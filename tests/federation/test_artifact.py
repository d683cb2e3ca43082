"""Signed artifacts: round trips, what the writer fills in and refuses, crash safety (adversarial reads live in
test_artifact_adversarial.py)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from fedseg.errors import ArtifactError, SignatureError
from fedseg.federation.artifact import (
    MAGIC,
    SIGNING_CONTEXT,
    Kind,
    TensorSpec,
    decode_payload,
    encode_payload,
    read_artifact,
    read_envelope_unverified,
    read_manifest_unverified,
    write_artifact,
)
from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.plan import Member, new_plan
from fedseg.hashing import canonical_json

SHAPES = {"enc.0.conv.weight": (4, 2, 3, 3, 3), "enc.0.conv.bias": (4,), "head.weight": (3, 4, 1, 1, 1), "scale": ()}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """Keys and a three-site plan shared by the module (key generation fsyncs, so do it once)."""
    d = tmp_path_factory.mktemp("keys")
    for name in ("coordinator", "site-a", "site-b", "site-c", "outsider"):
        generate_keypair(name, d)
    plan = new_plan("test-fed", Member("coordinator", load_public_key(d / "coordinator.pub")),
                    [Member(s, load_public_key(d / f"{s}.pub")) for s in ("site-a", "site-b", "site-c")])
    keys = {n: load_private_key(d / f"{n}.key") for n in ("coordinator", "site-a", "site-b", "site-c", "outsider")}
    return plan, keys


def tensors(dtype: str = "float32", seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def spec(dtype: str = "float32") -> dict[str, TensorSpec]:
    return {name: TensorSpec(shape, dtype) for name, shape in SHAPES.items()}


def update_manifest(**extra):
    return {"kind": "update", "round": 1, "signer": "site-a", "parent_sha256": "ab" * 32, "weights": "full",
            "num_examples": 12, "metrics": {"dice_wt": 0.5}, **extra}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_is_byte_identical(fed, tmp_path, dtype):
    plan, keys = fed
    original = tensors(dtype)
    written = write_artifact(tmp_path / "u.fedseg", manifest=update_manifest(), tensors=original, key=keys["site-a"],
                             plan=plan)
    got = read_artifact(tmp_path / "u.fedseg", plan, kind=Kind.UPDATE, spec=spec())
    assert set(got.tensors) == set(SHAPES)
    for name, array in original.items():
        assert got.tensors[name].dtype == np.dtype(dtype)
        assert got.tensors[name].shape == SHAPES[name]
        assert got.tensors[name].tobytes() == array.tobytes()
    assert got.manifest == written.manifest
    assert got.signer.id == "site-a" and got.kind is Kind.UPDATE and got.round == 1
    assert got.digest == written.digest == got.manifest["payload_sha256"]
    assert got.manifest["dtype"] == dtype


def test_writer_fills_the_manifest(fed, tmp_path):
    plan, keys = fed
    art = write_artifact(tmp_path / "u.fedseg", manifest=update_manifest(), tensors=tensors(), key=keys["site-a"],
                         plan=plan)
    m = art.manifest
    data = (tmp_path / "u.fedseg").read_bytes()
    payload = data[-m["payload_bytes"]:]
    assert data.startswith(MAGIC)
    assert m["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert m["federation_id"] == plan.federation_id and m["plan_sha256"] == plan.sha256
    assert m["tensors"] == {name: list(shape) for name, shape in SHAPES.items()}
    assert m["format_version"] == 1 and m["dtype"] == "float32"
    assert m["software"]["fedseg"] and "torch" in m["software"]
    assert m["created_at"].endswith("Z") and len(m["created_at"]) == 20
    assert m["num_examples"] == 12 and m["metrics"] == {"dice_wt": 0.5}
    # The signature covers the domain-separated canonical manifest.
    env = read_envelope_unverified(tmp_path / "u.fedseg")
    import base64

    assert plan.site("site-a").public_key.verify(base64.b64decode(env.signature),
                                                 SIGNING_CONTEXT + canonical_json(env.manifest))
    assert read_manifest_unverified(tmp_path / "u.fedseg") == m


def test_same_inputs_give_byte_identical_files(fed, tmp_path):
    plan, keys = fed
    manifest = update_manifest(created_at="2024-01-01T00:00:00Z")
    write_artifact(tmp_path / "a.fedseg", manifest=manifest, tensors=tensors(), key=keys["site-a"], plan=plan)
    shuffled = dict(reversed(list(tensors().items())))
    write_artifact(tmp_path / "b.fedseg", manifest=manifest, tensors=shuffled, key=keys["site-a"], plan=plan)
    assert (tmp_path / "a.fedseg").read_bytes() == (tmp_path / "b.fedseg").read_bytes()
    assert encode_payload(tensors()) == encode_payload(shuffled)


def test_global_round_trip_signed_by_coordinator(fed, tmp_path):
    plan, keys = fed
    manifest = {"kind": "global", "round": 0, "signer": "coordinator", "parent_sha256": None,
                "contributors": [], "strategy": "fedavg", "expires_at": "2099-01-01T00:00:00Z"}
    written = write_artifact(tmp_path / "g.fedseg", manifest=manifest, tensors=tensors(), key=keys["coordinator"],
                             plan=plan)
    got = read_artifact(tmp_path / "g.fedseg", plan, kind=Kind.GLOBAL, spec=spec())
    assert got.signer.id == "coordinator" and got.digest == written.digest


def test_load_tensors_false_verifies_but_returns_no_tensors(fed, tmp_path):
    plan, keys = fed
    write_artifact(tmp_path / "u.fedseg", manifest=update_manifest(), tensors=tensors(), key=keys["site-a"], plan=plan)
    got = read_artifact(tmp_path / "u.fedseg", plan, spec=spec(), load_tensors=False)
    assert got.tensors == {}
    with pytest.raises(ArtifactError, match="missing"):
        read_artifact(tmp_path / "u.fedseg", plan, spec={**spec(), "extra": TensorSpec((1,))}, load_tensors=False)


def test_returned_tensors_are_independent_and_writable(fed, tmp_path):
    plan, keys = fed
    write_artifact(tmp_path / "u.fedseg", manifest=update_manifest(), tensors=tensors(), key=keys["site-a"], plan=plan)
    got = read_artifact(tmp_path / "u.fedseg", plan).tensors
    before = {k: v.copy() for k, v in got.items()}
    got["enc.0.conv.weight"][...] = 7.0
    for name in SHAPES:
        assert got[name].flags.writeable and got[name].flags.aligned
        if name != "enc.0.conv.weight":
            np.testing.assert_array_equal(got[name], before[name])


def test_float16_payload_satisfies_a_float32_spec_but_not_the_reverse(fed, tmp_path):
    plan, keys = fed
    write_artifact(tmp_path / "h.fedseg", manifest=update_manifest(), tensors=tensors("float16"), key=keys["site-a"],
                   plan=plan)
    assert read_artifact(tmp_path / "h.fedseg", plan, spec=spec("float32")).manifest["dtype"] == "float16"
    write_artifact(tmp_path / "f.fedseg", manifest=update_manifest(), tensors=tensors(), key=keys["site-a"], plan=plan)
    with pytest.raises(ArtifactError, match="must be float16"):
        read_artifact(tmp_path / "f.fedseg", plan, spec=spec("float16"))


def test_decode_payload_from_read_only_bytes_copies(fed):
    payload = encode_payload(tensors())
    got = decode_payload(payload, spec=spec(), dtype="float32", where="mem")
    assert all(a.flags.writeable for a in got.values())
    np.testing.assert_array_equal(got["head.weight"], tensors()["head.weight"])


@pytest.mark.parametrize(
    ("tensors_in", "match"),
    [
        ({"a": np.zeros(2, np.float32), "b": np.zeros(2, np.float16)}, "share one dtype"),
        ({"a": np.zeros(2, np.float64)}, "float32 or float16"),
        ({"a": np.zeros(2, np.int32)}, "float32 or float16"),
        ({"a/b": np.zeros(2, np.float32)}, "without '/'"),
        ({"": np.zeros(2, np.float32)}, "non-empty"),
        ({".": np.zeros(2, np.float32)}, "non-empty"),
        ({"a": np.array([1.0, np.nan], np.float32)}, "NaN/Inf"),
        ({"a": np.array([np.inf], np.float16)}, "NaN/Inf"),
        ({}, "at least one tensor"),
    ],
)
def test_writer_refuses_bad_tensors(fed, tmp_path, tensors_in, match):
    plan, keys = fed
    with pytest.raises(ArtifactError, match=match):
        write_artifact(tmp_path / "x.fedseg", manifest=update_manifest(), tensors=tensors_in, key=keys["site-a"],
                       plan=plan)
    assert not (tmp_path / "x.fedseg").exists()


@pytest.mark.parametrize(
    ("manifest", "key", "error", "match"),
    [
        (update_manifest(signer="site-b"), "site-a", SignatureError, "not the plan key of 'site-b'"),
        (update_manifest(signer="nobody"), "site-a", SignatureError, "not a member"),
        (update_manifest(signer="coordinator"), "coordinator", SignatureError, "signed by a member site"),
        ({**update_manifest(), "kind": "global"}, "site-a", SignatureError, "signed by coordinator"),
        ({**update_manifest(), "kind": "delta"}, "site-a", ArtifactError, "kind must be"),
        ({**update_manifest(), "round": -1}, "site-a", ArtifactError, "round must be"),
        ({k: v for k, v in update_manifest().items() if k != "signer"}, "site-a", ArtifactError, "name its signer"),
        (update_manifest(metrics={"x": float("nan")}), "site-a", ArtifactError, "plain JSON"),
    ],
)
def test_writer_refuses_bad_manifests(fed, tmp_path, manifest, key, error, match):
    plan, keys = fed
    with pytest.raises(error, match=match):
        write_artifact(tmp_path / "x.fedseg", manifest=manifest, tensors=tensors(), key=keys[key], plan=plan)
    assert not (tmp_path / "x.fedseg").exists()


def test_writer_enforces_max_bytes(fed, tmp_path):
    plan, keys = fed
    with pytest.raises(ArtifactError, match="the limit is 1000"):
        write_artifact(tmp_path / "x.fedseg", manifest=update_manifest(), tensors=tensors(), key=keys["site-a"],
                       plan=plan, max_bytes=1000)
    assert not (tmp_path / "x.fedseg").exists()


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_interrupted_write_leaves_old_file_and_no_temp(fed, tmp_path, monkeypatch, fail_at):
    plan, keys = fed
    dest = tmp_path / "u.fedseg"
    write_artifact(dest, manifest=update_manifest(), tensors=tensors(), key=keys["site-a"], plan=plan)
    before = dest.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, fail_at, boom)
    for target in (dest, tmp_path / "new.fedseg"):
        with pytest.raises(OSError, match="simulated crash"):
            write_artifact(target, manifest=update_manifest(round=2), tensors=tensors(seed=1), key=keys["site-a"],
                           plan=plan)
    monkeypatch.undo()
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.fedseg"]
    assert read_artifact(dest, plan).round == 1

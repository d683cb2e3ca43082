"""Typed manifests: builders, to_dict as the files have always said it, the strict parse, timestamps, enums."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from fedseg.errors import ArtifactError
from fedseg.federation.artifact import read_artifact, write_artifact
from fedseg.federation.manifest import (
    Contributor,
    DType,
    GlobalManifest,
    Kind,
    StrategyRecord,
    UpdateManifest,
    WeightsKind,
    aggregated_global_manifest,
    format_timestamp,
    initial_global_manifest,
    manifest_from_dict,
    parse_timestamp,
    update_manifest,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "compat-v0_1" / "fixture.json"
OLD = {name: a["manifest"] for name, a in json.loads(FIXTURE.read_text("utf-8"))["artifacts"].items()}
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
MODEL = {"widths": [4, 8]}
SEAL = ("federation_id", "plan_sha256", "payload_sha256", "payload_bytes", "dtype", "tensors", "software",
        "format_version")


# ------------------------------------------------------------------------------------------- timestamps


def test_format_timestamp_is_utc_seconds_with_z() -> None:
    assert format_timestamp(T0) == "2024-05-01T12:00:00Z"
    assert format_timestamp(T0.replace(microsecond=999_999)) == "2024-05-01T12:00:00Z"
    plus2 = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2024, 5, 1, 14, 0, tzinfo=plus2)) == "2024-05-01T12:00:00Z"
    assert format_timestamp(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00Z"  # naive: taken as UTC


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T12:00:00Z", T0),
    ("2024-05-01T14:00:00+02:00", T0),
    ("2024-05-01T12:00:00.5Z", T0.replace(microsecond=500_000)),
    ("2024-05-01T12:00:00", None),  # no timezone
    ("yesterday", None),
    (20240501, None),
    (None, None),
])
def test_parse_timestamp(text, expected) -> None:
    got = parse_timestamp(text)
    assert got == expected
    if got is not None:
        assert got.tzinfo == timezone.utc


def test_timestamp_round_trip() -> None:
    for text in (o["created_at"] for o in OLD.values()):
        assert format_timestamp(parse_timestamp(text)) == text


# ------------------------------------------------------------------------------------------------ enums


def test_enum_values_are_the_file_strings() -> None:
    assert [k.value for k in Kind] == ["global", "update"]
    assert [w.value for w in WeightsKind] == ["full", "delta"]
    assert [d.value for d in DType] == ["float32", "float16"]
    assert WeightsKind.DELTA == "delta" and Kind("global") is Kind.GLOBAL
    assert GlobalManifest.kind is Kind.GLOBAL and UpdateManifest.kind is Kind.UPDATE


# ---------------------------------------------------------------------------------- builders and to_dict


def test_builders_give_the_keys_files_have_always_had() -> None:
    initial = initial_global_manifest(signer="coordinator", model=MODEL, seed=3, created=T0, expiry_days=30)
    assert initial.to_dict() == {
        "kind": "global", "round": 0, "signer": "coordinator", "parent_sha256": None, "weights": "full",
        "model": MODEL, "strategy": None, "contributors": [], "metrics": {}, "seed": 3,
        "created_at": "2024-05-01T12:00:00Z", "expires_at": "2024-05-31T12:00:00Z"}
    agg = aggregated_global_manifest(
        round_=2, signer="coordinator", parent_sha256="ab" * 32, model=MODEL,
        contributors=[Contributor("site-a", "cd" * 32, 3), Contributor("site-b", "ef" * 32, None)],
        strategy=StrategyRecord("fedavg", {"clip_norm": 0.0}), created=T0, expiry_days=1)
    assert agg.to_dict() == {
        "kind": "global", "round": 2, "signer": "coordinator", "parent_sha256": "ab" * 32, "weights": "full",
        "model": MODEL, "num_examples": 3, "strategy": {"name": "fedavg", "params": {"clip_norm": 0.0}},
        "contributors": [{"site": "site-a", "sha256": "cd" * 32, "num_examples": 3},
                         {"site": "site-b", "sha256": "ef" * 32, "num_examples": None}],
        "created_at": "2024-05-01T12:00:00Z", "expires_at": "2024-05-02T12:00:00Z"}
    upd = update_manifest(round_=1, signer="site-a", parent_sha256="ab" * 32, weights="delta", num_examples=4,
                          metrics={"steps": 2}, training={"seed": 1}, model=MODEL, created=T0)
    assert upd.weights is WeightsKind.DELTA
    assert upd.to_dict() == {
        "kind": "update", "round": 1, "signer": "site-a", "parent_sha256": "ab" * 32, "weights": "delta",
        "model": MODEL, "num_examples": 4, "metrics": {"steps": 2}, "training": {"seed": 1},
        "created_at": "2024-05-01T12:00:00Z"}


@pytest.mark.parametrize("name", sorted(OLD))
def test_old_manifests_parse_and_give_back_the_same_dict(name: str) -> None:
    parsed = manifest_from_dict(OLD[name], name)
    assert parsed.to_dict() == OLD[name]  # the signature covers exactly this dict
    assert parsed.kind.value == OLD[name]["kind"] and parsed.created_at.tzinfo == timezone.utc
    assert parsed.dtype in DType and all(isinstance(s, tuple) for s in parsed.tensors.values())


def test_written_manifest_reads_back_typed(plan, site_keys, tmp_path: Path) -> None:
    built = update_manifest(round_=1, signer="site-a", parent_sha256="ab" * 32, weights=WeightsKind.FULL,
                            num_examples=4, metrics={"val": {"WT": 0.5}}, training={}, model=MODEL, created=T0)
    write_artifact(tmp_path / "u.fedseg", manifest=built, tensors={"w": np.ones(3, np.float32)},
                   key=site_keys["site-a"], plan=plan)
    typed = read_artifact(tmp_path / "u.fedseg", plan).typed_manifest
    assert isinstance(typed, UpdateManifest)
    assert (typed.round, typed.signer, typed.num_examples, typed.created_at) == (1, "site-a", 4, T0)
    assert typed.plan_sha256 == plan.sha256 and typed.dtype is DType.FLOAT32 and typed.tensors == {"w": (3,)}
    assert {k: v for k, v in typed.to_dict().items() if k not in SEAL} == built.to_dict()


# ------------------------------------------------------------------------------------------ strict parse

GLOBAL = OLD["global-r0001.fedseg"]
UPDATE = OLD["site-a-r0001.fedseg"]


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("data, match", [
    ([1, 2], "must be an object"),
    ({**UPDATE, "kind": "delta"}, "kind must be 'global' or 'update'"),
    ({**UPDATE, "extra": 1}, "unknown field"),
    ({**UPDATE, "expires_at": "2099-01-01T00:00:00Z"}, "unknown field.*expires_at"),
    (_without(UPDATE, "num_examples"), "lacks num_examples"),
    (_without(UPDATE, "payload_sha256"), "lacks payload_sha256"),
    (_without(GLOBAL, "contributors"), "lacks contributors"),
    ({**UPDATE, "round": "1"}, "round must be an integer"),
    ({**UPDATE, "round": True}, "round must be an integer"),
    ({**UPDATE, "round": -1}, "round must be an integer >= 0"),
    ({**UPDATE, "signer": None}, "signer must be a string"),
    ({**UPDATE, "weights": "sparse"}, "weights must be"),
    ({**GLOBAL, "weights": "delta"}, "'full' in a global model"),
    ({**UPDATE, "dtype": "float64"}, "dtype must be"),
    ({**UPDATE, "created_at": "2024-01-01T00:00:00"}, "created_at must be a UTC time"),
    ({**UPDATE, "created_at": "2024-01-01T02:00:00+02:00"}, "created_at must be a UTC time"),
    ({**GLOBAL, "expires_at": None}, "expires_at must be a UTC time"),
    ({**UPDATE, "metrics": [0.5]}, "metrics must be an object"),
    ({**UPDATE, "tensors": {"w": [2, -1]}}, "tensors must be an object mapping names to shapes"),
    ({**UPDATE, "format_version": 0}, "format_version must be an integer >= 1"),
    ({**GLOBAL, "strategy": "fedavg"}, "strategy must be an object of a name and params"),
    ({**GLOBAL, "contributors": [{"site": "a"}]}, "contributors must be objects of site, sha256, num_examples"),
    ({**GLOBAL, "contributors": {}}, "contributors must be a list"),
    ({**GLOBAL, "seed": 1.5}, "seed must be an integer"),
])
def test_strict_parse_refuses(data, match) -> None:
    with pytest.raises(ArtifactError, match=match) as info:
        manifest_from_dict(data, "x.fedseg")
    assert str(info.value).startswith("x.fedseg: ")


def test_optional_global_fields_may_be_absent() -> None:
    bare = {k: v for k, v in GLOBAL.items() if k not in ("expires_at", "num_examples", "metrics", "seed")}
    parsed = manifest_from_dict(bare, "g")
    assert (parsed.expires_at, parsed.num_examples, parsed.metrics, parsed.seed) == (None, None, None, None)
    assert parsed.to_dict() == bare


def test_privacy_record_is_signed_and_a_tampered_epsilon_fails(plan, site_keys, tmp_path: Path) -> None:
    from fedseg.errors import SignatureError

    privacy = {"mode": "dp-sgd", "epsilon": 1.25, "delta": 1e-5, "noise_multiplier": 1.1, "clip": 1.0,
               "sampling_rate": 0.1, "steps": 20, "accountant": "rdp"}
    built = update_manifest(round_=1, signer="site-a", parent_sha256="ab" * 32, weights=WeightsKind.FULL,
                            num_examples=4, metrics={}, training={}, model=MODEL, created=T0, privacy=privacy)
    assert built.to_dict()["privacy"] == privacy
    assert "privacy" not in UPDATE and manifest_from_dict(UPDATE, "u").privacy is None
    path = tmp_path / "u.fedseg"
    write_artifact(path, manifest=built, tensors={"w": np.ones(3, np.float32)}, key=site_keys["site-a"], plan=plan)
    assert read_artifact(path, plan).typed_manifest.privacy == privacy
    raw = path.read_bytes()
    assert raw.count(b'"epsilon":1.25') == 1
    path.write_bytes(raw.replace(b'"epsilon":1.25', b'"epsilon":0.25'))
    with pytest.raises(SignatureError):
        read_artifact(path, plan)
    with pytest.raises(ArtifactError, match="privacy must be an object"):
        manifest_from_dict({**UPDATE, "privacy": 1.0}, "x.fedseg")

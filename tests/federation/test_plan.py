"""The federation plan: TOML round trip, hash, lookups, and every rejection the issue lists."""

from __future__ import annotations

import re

import pytest

from fedseg.configs.aggregation import Strategy
from fedseg.errors import PlanError
from fedseg.federation.keys import generate_keypair, load_public_key
from fedseg.federation.plan import Member, load_plan, new_plan, plan_to_toml, write_plan


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """A three-site plan, made once for the module (overrides the per-test conftest fixture for speed)."""
    d = tmp_path_factory.mktemp("keys")
    for name in ("coordinator", "site-a", "site-b", "site-c"):
        generate_keypair(name, d)
    return new_plan("test-fed", Member("coordinator", load_public_key(d / "coordinator.pub")),
                    [Member(s, load_public_key(d / f"{s}.pub")) for s in ("site-a", "site-b", "site-c")])


@pytest.fixture
def toml_text(plan) -> str:
    return plan_to_toml(plan)


def load_text(tmp_path, text: str):
    (tmp_path / "plan.toml").write_text(text)
    return load_plan(tmp_path / "plan.toml")


def test_round_trip_and_hash(plan, tmp_path):
    write_plan(plan, tmp_path / "plan.toml")
    loaded = load_plan(tmp_path / "plan.toml")
    assert loaded == plan and loaded.sha256 == plan.sha256
    assert re.fullmatch(r"[0-9a-f]{64}", plan.sha256)
    text = (tmp_path / "plan.toml").read_text()
    assert text.startswith("# fedseg federation plan") and "[[sites]]" in text and "# 3D U-Net" in text


def test_hash_changes_with_any_setting(plan):
    assert plan.with_settings(rounds=plan.rounds + 1).sha256 != plan.sha256
    assert new_plan(plan.name, plan.coordinator, list(plan.sites)).sha256 != plan.sha256  # fresh federation id


def test_lookups(plan):
    assert [m.id for m in plan.members] == ["coordinator", "site-a", "site-b", "site-c"]
    assert plan.site("site-b").id == "site-b"
    assert plan.member_by_key_id(plan.site("site-c").key_id).id == "site-c"
    assert plan.member_by_key_id("ed25519:" + "0" * 32) is None
    with pytest.raises(PlanError, match="'site-z' is not a member"):
        plan.site("site-z")
    with pytest.raises(PlanError, match="not a member"):
        plan.site("coordinator")


def test_edited_toml_settings_are_read(plan, tmp_path, toml_text):
    edited = toml_text.replace('strategy = "fedavg"', 'strategy = "median"').replace("rounds = 10", "rounds = 3")
    loaded = load_text(tmp_path, edited)
    assert loaded.aggregation.strategy is Strategy.MEDIAN and loaded.rounds == 3


def test_duplicate_member_ids(plan):
    with pytest.raises(PlanError, match="'site-a' appears twice"):
        new_plan("x", plan.coordinator, [plan.site("site-a"), Member("site-a", plan.site("site-b").public_key)])


def test_duplicate_keys(plan):
    with pytest.raises(PlanError, match="share one public key"):
        new_plan("x", plan.coordinator, [plan.site("site-a"), Member("site-b", plan.site("site-a").public_key)])
    with pytest.raises(PlanError, match="share one public key"):
        new_plan("x", plan.coordinator, [Member("site-a", plan.coordinator.public_key)])


@pytest.mark.parametrize("bad_id", ["Site-A", "-a", "", "a b", "a" * 64, "é", "a/b"])
def test_bad_member_ids(plan, bad_id):
    with pytest.raises(PlanError, match="must match"):
        new_plan("x", plan.coordinator, [Member(bad_id, plan.site("site-a").public_key)])


def test_no_sites(plan):
    with pytest.raises(PlanError, match="at least one site"):
        new_plan("x", plan.coordinator, [])


@pytest.mark.parametrize(("old", "new", "match"), [
    ('strategy = "fedavg"', 'strategy = "fedmagic"', "expected one of fedavg"),
    ("rounds = 10", "rounds = 0", "rounds must lie in"),
    ("rounds = 10", 'rounds = "ten"', "must be an integer"),
    ("min_sites = 2", "min_sites = 4", "only 3 site"),
    ("min_sites = 2", "min_sites = 0", "min_sites must be >= 1"),
    ("batch_size = ", "batch_size = -1 #", "batch_size must lie in"),
    ("format = 1", "format = 2", "expected format = 1"),
    ("[coordinator]", "[coordinatorx]", "unknown table"),
    ("[training]", "[training]\nbogus = 1", "unknown setting"),
])
def test_rejected_edits(tmp_path, toml_text, old, new, match):
    assert old in toml_text
    with pytest.raises(PlanError, match=match) as info:
        load_text(tmp_path, toml_text.replace(old, new, 1))
    assert "plan.toml" in str(info.value)


def test_missing_coordinator(tmp_path, toml_text):
    start = toml_text.index("[coordinator]")
    end = toml_text.index("\n\n", start)
    with pytest.raises(PlanError, match="missing \\[coordinator\\]"):
        load_text(tmp_path, toml_text[:start] + toml_text[end:])


def test_patch_not_divisible_by_strides(plan):
    from dataclasses import replace

    with pytest.raises(PlanError, match="divisible"):
        plan.with_settings(training=replace(plan.training, patch_size=(60, 64, 64)))


def test_bad_public_key_in_toml(tmp_path, toml_text):
    text = re.sub(r'public_key = "fedseg-ed25519 [^"]+"', 'public_key = "fedseg-ed25519 AAAA"', toml_text, count=1)
    with pytest.raises(PlanError, match="32-byte"):
        load_text(tmp_path, text)


@pytest.mark.parametrize(("content", "match"), [("not = [toml", "does not parse"), (b"\xff\xfe", "does not parse")])
def test_not_toml(tmp_path, content, match):
    path = tmp_path / "plan.toml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(PlanError, match=match):
        load_plan(path)


def test_missing_and_oversized_plan(tmp_path):
    with pytest.raises(PlanError, match="cannot read"):
        load_plan(tmp_path / "none.toml")
    (tmp_path / "big.toml").write_bytes(b"#" * (1 << 20) + b"\n")
    with pytest.raises(PlanError, match="under 1 MiB"):
        load_plan(tmp_path / "big.toml")


def test_privacy_table_round_trips_and_guards_its_guarantee(plan, tmp_path):
    import dataclasses

    from fedseg.configs.aggregation import AggregationConfig, Weighting
    from fedseg.privacy import PrivacyConfig, PrivacyMode

    sites = tuple(dataclasses.replace(s, cases=30) for s in plan.sites)
    private = plan.with_settings(sites=sites, privacy=PrivacyConfig(mode=PrivacyMode.DP_SGD, target_epsilon=3.0))
    write_plan(private, tmp_path / "plan.toml")
    assert "[privacy]" in (tmp_path / "plan.toml").read_text() and "[privacy]" not in plan_to_toml(plan)
    loaded = load_plan(tmp_path / "plan.toml")
    assert loaded.privacy == private.privacy and loaded.sha256 == private.sha256 != plan.sha256
    with pytest.raises(PlanError, match="site-a, site-b, site-c have no cases"):
        plan.with_settings(privacy=PrivacyConfig(mode=PrivacyMode.DP_SGD))
    central = PrivacyConfig(mode=PrivacyMode.CENTRAL)
    with pytest.raises(PlanError, match="weighting"):
        plan.with_settings(privacy=central)
    with pytest.raises(PlanError, match="mean strategy"):
        plan.with_settings(privacy=central, aggregation=AggregationConfig(
            min_sites=2, weighting=Weighting.UNIFORM, strategy=Strategy.MEDIAN))
    plan.with_settings(privacy=central, aggregation=AggregationConfig(min_sites=2, weighting=Weighting.UNIFORM))

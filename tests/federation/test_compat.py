"""Files written before issue 11 still load and verify: the committed fixture ``tests/fixtures/compat-v0_1``.

The fixture (made by ``scripts/make_compat_fixture.py`` with the code of that time, no private key kept)
holds a plan written by ``fedseg init``, the signed round-0 global, two site updates (full float32 and
delta float16) and an aggregated round-1 global. Its plan hash is bound into every artifact, so it must
not change when fedseg gains settings or its manifest code is rewritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.artifact import read_artifact
from fedseg.federation.plan import load_plan

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "compat-v0_1"
RECORD = json.loads((FIXTURE / "fixture.json").read_text("utf-8"))
ARTIFACTS = sorted(RECORD["artifacts"])


def test_the_fixture_holds_no_private_key() -> None:
    assert not list(FIXTURE.glob("*.key"))
    assert all(b"PRIVATE" not in p.read_bytes() for p in FIXTURE.iterdir())


def test_old_plan_loads_with_its_hash_unchanged() -> None:
    plan = load_plan(FIXTURE / "plan.toml")
    assert plan.sha256 == RECORD["plan_sha256"]
    assert plan.federation_id == RECORD["federation_id"]


@pytest.mark.parametrize("name", ARTIFACTS)
def test_old_artifacts_verify(name: str) -> None:
    plan = load_plan(FIXTURE / "plan.toml")
    expected = RECORD["artifacts"][name]
    art = read_artifact(FIXTURE / name, plan)
    assert art.digest == expected["payload_sha256"]
    assert art.kind.value == expected["kind"] and art.round == expected["round"]
    assert art.tensors


@pytest.mark.parametrize("name", ARTIFACTS)
def test_old_artifacts_verify_through_inspect(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # inspect checks expiry as train-local does: look at the files as of the day they were made
    from datetime import datetime

    from fedseg.workflow.site import received

    made = datetime.fromisoformat(RECORD["artifacts"][name]["manifest"]["created_at"].replace("Z", "+00:00"))
    monkeypatch.setattr(received, "utc_now", lambda: made)
    # a copy: inspect's arguments must exist, and the fixture stays read-only
    shutil.copy2(FIXTURE / name, tmp_path / name)
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / name), "--plan", str(FIXTURE / "plan.toml"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"] is True


def test_a_setting_added_later_with_a_default_keeps_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    # fedseg gains a training setting with a default: the old plan file does not state it
    import dataclasses

    from fedseg.federation import plan as plan_module

    later = dataclasses.make_dataclass("TrainingConfig", [("added_later", float, dataclasses.field(default=0.5))],
                                       bases=(plan_module.TrainingConfig,), frozen=True)
    monkeypatch.setattr(plan_module, "TrainingConfig", later)
    plan = load_plan(FIXTURE / "plan.toml")
    assert plan.training.added_later == 0.5 and "added_later" in plan.to_dict()["training"]
    assert plan.sha256 == RECORD["plan_sha256"]


def test_a_plan_file_hashes_what_it_states(tmp_path: Path) -> None:
    from fedseg.federation.plan import write_plan
    from fedseg.hashing import sha256_json

    text = (FIXTURE / "plan.toml").read_text("utf-8")
    assert "fedprox_mu = 0.0\n" in text
    (tmp_path / "short.toml").write_text(text.replace("fedprox_mu = 0.0\n", ""), "utf-8")
    short = load_plan(tmp_path / "short.toml")
    full = load_plan(FIXTURE / "plan.toml")
    assert short == full  # the same settings ...
    assert short.sha256 != full.sha256  # ... but another document: the hash covers what the file states
    assert short.sha256 == sha256_json(tomllib.loads((tmp_path / "short.toml").read_text("utf-8")))
    # a plan built in memory states everything: the file it writes loads with the same hash
    changed = full.with_settings(rounds=5)
    assert changed.sha256 == sha256_json(changed.to_dict())
    write_plan(changed, tmp_path / "changed.toml")
    assert load_plan(tmp_path / "changed.toml").sha256 == changed.sha256


def test_the_privacy_table_defaults_off_and_keeps_the_hash() -> None:
    from fedseg.privacy import PrivacyConfig, PrivacyMode

    plan = load_plan(FIXTURE / "plan.toml")
    assert plan.privacy == PrivacyConfig() and plan.privacy.mode is PrivacyMode.OFF
    assert "privacy" not in plan.to_dict()
    assert plan.sha256 == RECORD["plan_sha256"]


def test_an_old_plan_keeps_the_training_it_meant() -> None:
    """Keys added later whose default changed read as what the old plan meant: each round restarts afresh."""
    from fedseg.configs.training import LrScope, TrainingConfig

    old = load_plan(FIXTURE / "plan.toml")
    assert old.training.lr_scope is LrScope.ROUND and old.training.keep_optimizer_state is False
    new = TrainingConfig()  # what a new plan writes, explicitly, into its TOML
    assert new.lr_scope is LrScope.FEDERATION and new.keep_optimizer_state is True

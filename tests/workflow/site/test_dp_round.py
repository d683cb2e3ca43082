"""A site round under ``[privacy] mode = "dp-sgd"``: accounting in the signed update, and the budget refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fedseg.errors import ConfigError, TrainingError
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.privacy import PrivacyConfig, PrivacyMode, epsilon
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.site.train import train_local
from tests._train_data import make_dataset, tiny_plan


def _fed(plan, site_keys, tmp_path: Path, *, enrolled: int, **privacy):
    sites = tuple(dataclasses.replace(s, cases=enrolled) for s in plan.sites)
    p = tiny_plan(plan, batch_size=2, steps_per_round=3).with_settings(
        sites=sites, rounds=2, privacy=PrivacyConfig(mode=PrivacyMode.DP_SGD, **privacy))
    global_path = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=3)
    return p, global_path, make_dataset(tmp_path / "data", train=4, val=1, shape=(16, 16, 16))


def test_dp_round_records_its_accounting_in_the_signed_update(plan, site_keys, tmp_path: Path) -> None:
    p, global_path, data = _fed(plan, site_keys, tmp_path, enrolled=4, target_epsilon=20.0)
    out = tmp_path / "a" / "u.fedseg"
    result = train_local(p, global_path, data, site_keys["site-a"], out, device="cpu")
    privacy = read_artifact(out, p, kind=Kind.UPDATE).typed_manifest.privacy
    assert privacy == result.privacy
    assert privacy["mode"] == "dp-sgd" and privacy["sampling_rate"] == 0.5 and privacy["steps"] == 3
    assert privacy["clip"] == 1.0 and privacy["delta"] == 1e-5 and privacy["accountant"].startswith("rdp")
    sigma = privacy["noise_multiplier"]
    assert privacy["epsilon"] == pytest.approx(epsilon(0.5, sigma, 3, 1e-5), abs=1e-6)
    assert privacy["epsilon"] < epsilon(0.5, sigma, 6, 1e-5) <= 20.0  # round 2 of 2 would still fit
    assert "train_loss" not in read_artifact(out, p).manifest["metrics"]  # not private: it stays at the site


def test_a_round_past_the_budget_is_refused_before_training(plan, site_keys, tmp_path: Path) -> None:
    p, global_path, data = _fed(plan, site_keys, tmp_path, enrolled=4, target_epsilon=1.0, noise_multiplier=0.5)
    out = tmp_path / "a" / "u.fedseg"
    with pytest.raises(ConfigError, match="training round 1 would bring ε to .* over the plan's privacy budget"):
        train_local(p, global_path, data, site_keys["site-a"], out, device="cpu")
    assert not out.exists() and not out.with_name(out.name + ".ckpt").exists()


def test_fewer_cases_than_enrolled_spend_more_and_are_refused(plan, site_keys, tmp_path: Path) -> None:
    # noise derived for 1000 enrolled cases (q = 0.002) cannot cover 4 real ones (q = 0.5)
    p, global_path, data = _fed(plan, site_keys, tmp_path, enrolled=1000, target_epsilon=8.0)
    with pytest.raises(ConfigError, match="over the plan's privacy budget"):
        train_local(p, global_path, data, site_keys["site-a"], tmp_path / "u.fedseg", device="cpu")
    with pytest.raises(TrainingError, match="--steps/--epochs"):
        train_local(p, global_path, data, site_keys["site-a"], tmp_path / "u.fedseg", device="cpu", steps=2)


def test_every_started_run_is_spent_and_a_retrained_round_counts_again(tmp_path: Path) -> None:
    from fedseg.privacy import site_schedule
    from fedseg.workflow.site.privacy_spent import privacy_file, spend

    schedule = site_schedule(PrivacyConfig(mode=PrivacyMode.DP_SGD, target_epsilon=2.0), enrolled_cases=20,
                             train_cases=20, batch_size=2, steps_per_round=5, rounds=2, site="a")
    path = privacy_file(tmp_path / "state-x.json")
    first = spend(path, schedule, round_=1, parent_sha256="ab" * 32, site="a")
    again = spend(path, schedule, round_=1, parent_sha256="ab" * 32, site="a")  # the same round trained twice
    assert first["epsilon"] < again["epsilon"] <= 2.0 and (again["runs"], again["steps"]) == (2, 10)
    with pytest.raises(ConfigError, match=r"2 run\(s\) recorded"):
        spend(path, schedule, round_=2, parent_sha256="cd" * 32, site="a")
    assert len(json.loads(path.read_text())) == 2  # a refused run records nothing

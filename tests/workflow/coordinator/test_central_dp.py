"""Central DP-FedAvg at the coordinator: clipped uniform mean plus secret noise, ε in the manifest, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.configs.aggregation import AggregationConfig, Weighting
from fedseg.errors import ConfigError, PlanError
from fedseg.federation.artifact import read_artifact
from fedseg.federation.plan import Plan, write_plan
from fedseg.privacy import PrivacyConfig, PrivacyMode, central_schedule
from fedseg.workflow.coordinator import central_dp
from fedseg.workflow.coordinator.aggregate import aggregate_round
from tests._aggregate_data import SHAPES, model, write_global, write_update

CLIP = 0.5


def _central(plan: Plan, **privacy: Any) -> Plan:
    return plan.with_settings(rounds=4, aggregation=AggregationConfig(min_sites=2, weighting=Weighting.UNIFORM),
                              privacy=PrivacyConfig(mode=PrivacyMode.CENTRAL, central_clip_norm=CLIP, **privacy))


def _round(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> tuple[Any, list[Path], list[dict]]:
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    deltas = [model(float(i + 1)) for i in range(3)]  # norms sqrt(24) * (1, 2, 3): all far above the clip
    paths = [write_update(plan, site_keys, tmp_path / f"{s}.fedseg", s, g.digest, d, num_examples=10 * (i + 1))
             for i, (s, d) in enumerate(zip(("site-a", "site-b", "site-c"), deltas))]
    return g, paths, deltas


def _aggregate(plan: Plan, tmp_path: Path, site_keys: dict[str, Any], paths: list[Path], name: str = "fed", **kw: Any):
    out = tmp_path / name / "global-r0001.fedseg"
    return aggregate_round(plan=plan, global_path=tmp_path / "fed" / "global-r0000.fedseg",
                           key=site_keys["coordinator"], update_paths=paths, out=out, **kw), out


def test_central_round_is_the_clipped_uniform_mean_plus_noise(tmp_path: Path, plan: Plan, site_keys: dict[str, Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    p = _central(plan, target_epsilon=8.0)
    _, paths, deltas = _round(tmp_path, p, site_keys)
    monkeypatch.setattr(central_dp.os, "urandom", lambda n: b"\x07" * n)  # to look at the noise; never in use
    report, out = _aggregate(p, tmp_path, site_keys, paths)
    assert [v.weight for v in report.accepted] == pytest.approx([1 / 3] * 3)  # uniform, whatever the counts
    schedule = central_schedule(p.privacy, rounds=4)
    clipped = {k: np.mean([d[k] * CLIP / np.sqrt(24 * (i + 1) ** 2) for i, d in enumerate(deltas)], axis=0)
               for k in SHAPES}
    tensors = read_artifact(out, p).tensors
    residual = np.concatenate([(tensors[k] - clipped[k]).ravel() for k in SHAPES])
    expected_std = schedule.noise_multiplier * CLIP / 3
    assert 0.5 * expected_std < residual.std() < 1.6 * expected_std  # seeded: deterministic here
    privacy = read_artifact(out, p).typed_manifest.privacy
    assert privacy == report.privacy and privacy["mode"] == "central" and privacy["steps"] == 1
    assert privacy["epsilon"] == pytest.approx(schedule.epsilon_after(1), abs=1e-6) and privacy["clip"] == CLIP
    assert any("screens are off" in n for n in report.notes)
    again, out2 = _aggregate(p, tmp_path, site_keys, paths, name="fed2")  # same patched seed: same noise
    assert read_artifact(out2, p).digest == read_artifact(out, p).digest
    monkeypatch.undo()
    fresh, out3 = _aggregate(p, tmp_path, site_keys, paths, name="fed3")  # os.urandom: fresh noise
    assert read_artifact(out3, p).digest != read_artifact(out, p).digest


def test_central_refusals(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    p = _central(plan, target_epsilon=1.0, central_noise_multiplier=0.2)
    _, paths, _ = _round(tmp_path, p, site_keys)
    with pytest.raises(ConfigError, match="round 1 would spend"):
        _aggregate(p, tmp_path, site_keys, paths)
    ok = _central(plan)
    with pytest.raises(PlanError, match="cannot be overridden"):
        _aggregate(ok, tmp_path, site_keys, paths, strategy="median")
    assert not (tmp_path / "fed" / "global-r0001.fedseg").exists()


def test_cli_table_shows_epsilon(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], keydir: Path) -> None:
    p = _central(plan)
    _, paths, _ = _round(tmp_path, p, site_keys)
    write_plan(p, tmp_path / "fed" / "plan.toml")
    args = ["aggregate", "--plan", str(tmp_path / "fed" / "plan.toml"), "--global",
            str(tmp_path / "fed" / "global-r0000.fedseg"), "--key", str(keydir / "coordinator.key"),
            "--out", str(tmp_path / "fed" / "global-r0001.fedseg"), *map(str, paths)]
    result = CliRunner().invoke(app, [*args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["privacy"]["mode"] == "central"
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ε" in result.stdout and "central DP: every site's ε" in result.stdout

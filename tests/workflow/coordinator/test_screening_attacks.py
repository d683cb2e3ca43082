"""Attacks on the mean that screening must stop: inflated example counts and sign-flipped updates (issue 12.1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedseg.configs.aggregation import Weighting
from fedseg.federation.artifact import read_artifact
from fedseg.federation.plan import Plan
from fedseg.workflow.coordinator.aggregate import QuorumError, aggregate_round
from tests._aggregate_data import model, write_global, write_update


def _round(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], deltas: dict[str, dict[str, np.ndarray]],
           counts: dict[str, int]) -> tuple[Any, list[Path]]:
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    paths = [write_update(plan, site_keys, tmp_path / f"{s}.fedseg", s, g.digest,
                          {k: g.tensors[k] + d[k] for k in d}, num_examples=counts[s]) for s, d in deltas.items()]
    return g, paths


def _honest(rng: np.random.Generator, direction: dict[str, np.ndarray], noise: float = 0.6) -> dict[str, np.ndarray]:
    return {k: v + noise * rng.standard_normal(v.shape).astype(np.float32) * float(np.abs(v).mean() + 1e-3)
            for k, v in direction.items()}


def _direction() -> dict[str, np.ndarray]:
    return {k: np.sign(v) * 0.05 + v for k, v in model(0.0, np.random.default_rng(42), scale=0.05).items()}


def test_inflated_example_claim_is_rejected_and_cannot_take_over(tmp_path: Path, plan: Plan,
                                                                  site_keys: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    d = _direction()
    deltas = {s: _honest(rng, d) for s in ("site-a", "site-b", "site-c")}
    counts = {"site-a": 10, "site-b": 10, "site-c": 100_000}  # the plan's max_examples; enrolled: 1000
    _, paths = _round(tmp_path, plan, site_keys, deltas, counts)
    out = tmp_path / "fed" / "global-r0001.fedseg"
    report = aggregate_round(plan=plan, global_path=tmp_path / "fed" / "global-r0000.fedseg",
                             key=site_keys["coordinator"], update_paths=paths, out=out)
    rules = {v.site: v.reason.rule if v.reason else None for v in report.verdicts}
    assert rules == {"site-a": None, "site-b": None, "site-c": "examples"}
    assert [c["site"] for c in read_artifact(out, plan).manifest["contributors"]] == ["site-a", "site-b"]


def test_capped_weighting_limits_any_site_share(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    plan = plan.with_settings(aggregation=replace(plan.aggregation, weighting=Weighting.CAPPED, max_share=0.4,
                                                  direction_z=0.0, outlier_z=0.0))
    ones = {k: np.ones_like(v) for k, v in model().items()}
    deltas = {"site-a": {k: 0 * v for k, v in ones.items()}, "site-b": {k: 0 * v for k, v in ones.items()},
              "site-c": ones}
    counts = {"site-a": 10, "site-b": 10, "site-c": 1000}
    g, paths = _round(tmp_path, plan, site_keys, deltas, counts)
    out = tmp_path / "fed" / "global-r0001.fedseg"
    report = aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out)
    shares = {v.site: v.weight for v in report.verdicts}
    assert shares == pytest.approx({"site-a": 0.3, "site-b": 0.3, "site-c": 0.4})
    new = read_artifact(out, plan).tensors
    np.testing.assert_allclose(new["enc.bias"] - g.tensors["enc.bias"], 0.4, rtol=1e-6)


def test_sign_flipped_update_is_rejected_by_the_direction_screen(tmp_path: Path, plan: Plan,
                                                                 site_keys: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    d = _direction()
    deltas = {"site-a": _honest(rng, d), "site-b": _honest(rng, d), "site-c": {k: -v for k, v in _honest(rng, d).items()}}
    counts = {"site-a": 10, "site-b": 12, "site-c": 11}
    g, paths = _round(tmp_path, plan, site_keys, deltas, counts)
    out = tmp_path / "fed" / "global-r0001.fedseg"
    report = aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out)
    by_site = {v.site: v for v in report.verdicts}
    assert by_site["site-c"].reason is not None and by_site["site-c"].reason.rule == "direction"
    assert by_site["site-a"].accepted and by_site["site-b"].accepted
    assert by_site["site-c"].cosine < 0 < by_site["site-a"].cosine
    assert report.notes == []


def test_direction_screen_is_skipped_below_three_updates_and_says_so(tmp_path: Path, plan: Plan,
                                                                     site_keys: dict[str, Any]) -> None:
    rng = np.random.default_rng(3)
    d = _direction()
    deltas = {"site-a": _honest(rng, d), "site-b": {k: -v for k, v in _honest(rng, d).items()}}
    g, paths = _round(tmp_path, plan, site_keys, deltas, {"site-a": 10, "site-b": 10})
    report = aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths,
                             out=tmp_path / "fed" / "global-r0001.fedseg", dry_run=True)
    assert all(v.accepted for v in report.verdicts)
    assert any("direction screen skipped" in n for n in report.notes)


def test_plan_without_enrolled_counts_weighs_uniformly(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    plan = plan.with_settings(sites=tuple(replace(s, cases=None) for s in plan.sites),
                              aggregation=replace(plan.aggregation, direction_z=0.0, outlier_z=0.0))
    ones = {k: np.ones_like(v) for k, v in model().items()}
    deltas = {"site-a": {k: 0 * v for k, v in ones.items()}, "site-b": ones}
    g, paths = _round(tmp_path, plan, site_keys, deltas, {"site-a": 10, "site-b": 100_000})
    out = tmp_path / "fed" / "global-r0001.fedseg"
    report = aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out)
    assert report.weighting == "uniform" and any("enrolled case count" in n for n in report.notes)
    new = read_artifact(out, plan).tensors
    np.testing.assert_allclose(new["enc.bias"] - g.tensors["enc.bias"], 0.5, rtol=1e-6)


def test_default_quorum_is_a_majority(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    assert plan.aggregation.min_sites == 2
    rng = np.random.default_rng(4)
    g, paths = _round(tmp_path, plan, site_keys, {"site-a": _honest(rng, _direction())}, {"site-a": 10})
    out = tmp_path / "fed" / "global-r0001.fedseg"
    with pytest.raises(QuorumError, match="the quorum is 2"):
        aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out)
    assert not out.exists()

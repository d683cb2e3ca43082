"""Screening under dp-sgd: honest noisy sites pass, a sign flip is caught where signal outweighs noise."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedseg.federation.plan import Plan
from fedseg.privacy import PrivacyConfig, PrivacyMode
from fedseg.workflow.coordinator.aggregate import QuorumError, aggregate_round
from tests._aggregate_data import SHAPES, model, write_global, write_update

SITES = ("site-a", "site-b", "site-c")


def _dp_plan(plan: Plan, keydir: Path) -> Plan:
    from fedseg.federation.keys import generate_keypair, load_public_key
    from fedseg.federation.plan import Member

    generate_keypair("site-d", keydir)
    sites = (*plan.sites, Member("site-d", load_public_key(keydir / "site-d.pub")))
    return plan.with_settings(sites=tuple(dataclasses.replace(s, cases=40) for s in sites),
                              privacy=PrivacyConfig(mode=PrivacyMode.DP_SGD, target_epsilon=8.0))


def _record(eps: float = 2.0, **changes: Any) -> dict[str, Any]:
    return {"mode": "dp-sgd", "epsilon": eps, "delta": 1e-5, "noise_multiplier": 1.0, "clip": 1.0,
            "sampling_rate": 0.05, "steps": 50, "accountant": "rdp", **changes}


def _dp_delta(rng: np.random.Generator, signal: dict[str, np.ndarray], steps: int, noise_std: float):
    """The sum of ``steps`` DP-SGD steps: signal grows like steps, the per-step noise like sqrt(steps)."""
    return {k: steps * v + np.sqrt(steps) * noise_std * rng.standard_normal(v.shape) for k, v in signal.items()}


def _screen(tmp_path: Path, plan: Plan, keys: dict[str, Any], steps: int, noise_std: float,
            records: dict[str, dict] | None = None) -> dict[str, str | None]:
    rng = np.random.default_rng(5)
    signal = {k: 0.01 * np.sign(v) + v for k, v in model(0.0, np.random.default_rng(1), scale=0.01).items()}
    g = write_global(plan, keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    paths = []
    for site in (*SITES, "site-d"):
        delta = _dp_delta(rng, signal, steps, noise_std)
        if site == "site-d":
            delta = {k: -v for k, v in delta.items()}  # the sign-flipped (poisoned) update
        tensors = {k: (g.tensors[k] + delta[k]).astype(np.float32) for k in SHAPES}
        record = (records or {}).get(site, _record())
        paths.append(write_update(plan, keys, tmp_path / f"{site}.fedseg", site, g.digest, tensors,
                                  **({"privacy": record} if record is not None else {})))
    try:
        report = aggregate_round(plan=plan, global_path=tmp_path / "fed" / "global-r0000.fedseg",
                                 key=keys["coordinator"], update_paths=paths,
                                 out=tmp_path / "fed" / "global-r0001.fedseg", dry_run=True)
    except QuorumError as exc:
        report = exc.report
    return {str(v.site): v.reason.rule if v.reason else None for v in report.verdicts}


@pytest.fixture
def dp(plan: Plan, site_keys: dict[str, Any], keydir: Path):
    from fedseg.federation.keys import load_private_key

    p = _dp_plan(plan, keydir)
    return p, {**site_keys, "site-d": load_private_key(keydir / "site-d.key")}


def test_honest_dp_sites_pass_and_a_sign_flip_is_caught_when_signal_outweighs_noise(tmp_path: Path, dp) -> None:
    p, keys = dp
    assert _screen(tmp_path, p, keys, steps=400, noise_std=0.01) == {
        "site-a": None, "site-b": None, "site-c": None, "site-d": "direction"}


def test_under_dominating_noise_honest_sites_still_pass(tmp_path: Path, dp) -> None:
    # 4 steps, noise 50x the signal: no update has a direction, so none is rejected, the flipped one neither
    # (documented: a sign flip of pure noise is noise).
    p, keys = dp
    verdicts = _screen(tmp_path, p, keys, steps=4, noise_std=1.0)
    assert verdicts["site-a"] is None and verdicts["site-b"] is None and verdicts["site-c"] is None


def test_updates_without_a_valid_privacy_record_are_rejected(tmp_path: Path, dp) -> None:
    p, keys = dp
    records = {"site-a": None, "site-b": _record(eps=9.0), "site-c": _record(clip=5.0)}
    verdicts = _screen(tmp_path, p, keys, steps=400, noise_std=0.01, records=records)
    assert verdicts["site-a"] == verdicts["site-b"] == verdicts["site-c"] == "privacy"

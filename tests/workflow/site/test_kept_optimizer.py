"""``training.lr_scope = "federation"`` and ``training.keep_optimizer_state`` over two real rounds."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from fedseg.federation.state import default_state_path
from fedseg.train.checkpoint import read_tensors
from fedseg.train.loop import StepInfo
from fedseg.workflow.coordinator.aggregate import aggregate_round
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.site.train import optimizer_path, train_local
from tests._train_data import make_dataset, tiny_plan

STEPS = 4
LR = 1e-2


def _adam_steps(path: Path) -> set[float]:
    """Return the AdamW step counts recorded for the parameters in a kept optimizer file."""
    tensors, _ = read_tensors(path)
    return {float(v) for k, v in tensors.items() if k.endswith("/step")}


def _two_rounds(plan, site_keys, tmp_path: Path, **training):  # noqa: ANN001, ANN202 - test helper
    p = tiny_plan(plan, steps_per_round=STEPS, learning_rate=LR, **training).with_settings(rounds=2)
    g0 = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=3)
    data = {s: make_dataset(tmp_path / s, train=2, val=1, shape=(16, 16, 16), seed=i)
            for i, s in enumerate(("site-a", "site-b"))}
    lrs: dict[tuple[str, int], list[float]] = {}

    def round_(r: int, g: Path) -> list[Path]:
        outs = []
        for s, d in data.items():
            out = tmp_path / "updates" / f"{s}-r{r}.fedseg"
            train_local(p, g, d, site_keys[s], out, device="cpu", validate_after=False,
                        progress=lambda e, k=(s, r): lrs.setdefault(k, []).append(e.lr) if isinstance(e, StepInfo) else None)
            outs.append(out)
        return outs

    updates = round_(1, g0)
    g1 = tmp_path / "fed" / "global-r0001.fedseg"
    aggregate_round(plan=p, global_path=g0, key=site_keys["coordinator"], update_paths=updates, out=g1)
    return p, data, g1, round_, lrs


def test_federation_schedule_runs_once_over_the_rounds_and_the_optimizer_is_kept(plan, site_keys, tmp_path: Path) -> None:
    p, data, g1, round_, lrs = _two_rounds(plan, site_keys, tmp_path, lr_scope="federation", keep_optimizer_state=True)
    kept = optimizer_path(default_state_path(data["site-a"], p.federation_id))
    assert kept.exists() and _adam_steps(kept) == {float(STEPS)}
    with h5py.File(kept, "r") as f:
        assert f.attrs["round"] == "1"
    round_(2, g1)
    # Round r of R covers ((r-1)/R, r/R) of one cosine: round 1 starts at LR, round 2 at half of it.
    cosine = [LR * 0.5 * (1 + math.cos(math.pi * (k / (2 * STEPS)))) for k in range(2 * STEPS)]
    assert lrs[("site-a", 1)] == pytest.approx(cosine[:STEPS])
    assert lrs[("site-a", 2)] == pytest.approx(cosine[STEPS:])
    assert _adam_steps(kept) == {float(2 * STEPS)}  # round 2 went on from round 1's moments


def test_round_scope_restarts_the_schedule_and_keeps_no_optimizer_file(plan, site_keys, tmp_path: Path) -> None:
    p, data, g1, round_, lrs = _two_rounds(plan, site_keys, tmp_path)
    round_(2, g1)
    assert lrs[("site-a", 1)] == pytest.approx(lrs[("site-a", 2)])
    assert lrs[("site-a", 1)][0] == pytest.approx(LR)
    assert not optimizer_path(default_state_path(data["site-a"], p.federation_id)).exists()


def test_a_kept_state_of_another_round_is_not_used(plan, site_keys, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    p, data, g1, round_, _ = _two_rounds(plan, site_keys, tmp_path, keep_optimizer_state=True)
    kept = optimizer_path(default_state_path(data["site-a"], p.federation_id))
    with h5py.File(kept, "r+") as f:
        f.attrs["round"] = "7"  # e.g. left from an older federation run in the same state folder
    with caplog.at_level(logging.WARNING, logger="fedseg"):
        round_(2, g1)
    assert "not round 1; the optimizer starts afresh" in caplog.text
    assert _adam_steps(kept) == {float(STEPS)}  # a fresh optimizer: this round's steps only
    steps_b = _adam_steps(optimizer_path(default_state_path(data["site-b"], p.federation_id)))
    assert steps_b == {float(2 * STEPS)}
    assert np.isfinite(list(read_tensors(kept)[0].values())[0]).all()

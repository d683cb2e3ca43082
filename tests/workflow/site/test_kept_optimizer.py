"""``training.lr_scope = "federation"`` and ``training.keep_optimizer_state`` over two real rounds."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import h5py
import pytest

from fedseg.federation.state import default_state_path
from fedseg.train.checkpoint import read_tensors
from fedseg.train.loop import Phase, StepInfo
from fedseg.workflow.coordinator.aggregate import aggregate_round
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.site.kept_optimizer import kept_optimizer, optimizer_fit, optimizer_path
from fedseg.workflow.site.train import train_local
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
    state = default_state_path(data["site-a"], p.federation_id)
    kept = optimizer_path(state, 1)
    assert kept.exists() and _adam_steps(kept) == {float(STEPS)}
    with h5py.File(kept, "r") as f:
        assert f.attrs["round"] == "1"
    round_(2, g1)
    # Round r of R covers ((r-1)/R, r/R) of one cosine: round 1 starts at LR, round 2 at half of it.
    cosine = [LR * 0.5 * (1 + math.cos(math.pi * (k / (2 * STEPS)))) for k in range(2 * STEPS)]
    assert lrs[("site-a", 1)] == pytest.approx(cosine[:STEPS])
    assert lrs[("site-a", 2)] == pytest.approx(cosine[STEPS:])
    assert _adam_steps(optimizer_path(state, 2)) == {float(2 * STEPS)}  # round 2 went on from round 1's moments
    assert not kept.exists()  # round 1's file goes once round 2 is complete


def test_round_scope_restarts_the_schedule_and_keeps_no_optimizer_file(plan, site_keys, tmp_path: Path) -> None:
    p, data, g1, round_, lrs = _two_rounds(plan, site_keys, tmp_path, lr_scope="round", keep_optimizer_state=False)
    round_(2, g1)
    assert lrs[("site-a", 1)] == pytest.approx(lrs[("site-a", 2)])
    assert lrs[("site-a", 1)][0] == pytest.approx(LR)
    assert not list(default_state_path(data["site-a"], p.federation_id).parent.glob("*.optimizer-r*.h5"))


def test_a_kept_state_of_another_round_is_not_used(plan, site_keys, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    p, data, g1, round_, _ = _two_rounds(plan, site_keys, tmp_path, keep_optimizer_state=True)
    state_a = default_state_path(data["site-a"], p.federation_id)
    with h5py.File(optimizer_path(state_a, 1), "r+") as f:
        f.attrs["round"] = "7"  # e.g. copied over from another federation run
    with caplog.at_level(logging.WARNING, logger="fedseg"):
        round_(2, g1)
    assert "not of round 1 of this plan; the optimizer starts afresh" in caplog.text
    assert _adam_steps(optimizer_path(state_a, 2)) == {float(STEPS)}  # a fresh optimizer: this round's steps only
    steps_b = _adam_steps(optimizer_path(default_state_path(data["site-b"], p.federation_id), 2))
    assert steps_b == {float(2 * STEPS)}


class _Stop(Exception):
    pass


def test_an_interrupted_round_resumes_from_the_previous_rounds_moments(plan, site_keys, tmp_path: Path) -> None:
    p, data, g1, _, _ = _two_rounds(plan, site_keys, tmp_path, keep_optimizer_state=True)
    state_a, out = default_state_path(data["site-a"], p.federation_id), tmp_path / "a-r2.fedseg"

    def crash(event: object) -> None:
        if isinstance(event, Phase) and event.name == "validate-after":
            raise _Stop  # after training (no mid-round checkpoint: checkpoint_every > steps), before completion

    with pytest.raises(_Stop):
        train_local(p, g1, data["site-a"], site_keys["site-a"], out, device="cpu", checkpoint_every=100, progress=crash)
    assert optimizer_path(state_a, 1).exists()  # round 1's moments survive until round 2 is complete
    train_local(p, g1, data["site-a"], site_keys["site-a"], out, device="cpu", checkpoint_every=100, resume=True)
    assert _adam_steps(optimizer_path(state_a, 2)) == {float(2 * STEPS)}
    assert not optimizer_path(state_a, 1).exists()


def test_a_state_of_another_optimizer_kind_is_not_used(plan, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from fedseg.model.spec import build_model
    from fedseg.train.checkpoint import write_optimizer
    from fedseg.train.loop import make_optimizer

    sgd, adamw = tiny_plan(plan, optimizer="sgd"), tiny_plan(plan)  # e.g. a plan update switched the optimizer
    assert optimizer_fit(sgd) != optimizer_fit(adamw) == optimizer_fit(tiny_plan(plan))
    model = build_model(sgd.model)
    opt = make_optimizer(model, sgd.training)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    path = tmp_path / "kept.h5"
    write_optimizer(path, opt.state_dict(), attrs={"round": "1", "fits_sha256": optimizer_fit(sgd)})
    groups = make_optimizer(model, adamw.training).state_dict()["param_groups"]
    with caplog.at_level(logging.WARNING, logger="fedseg"):
        assert kept_optimizer(path, 2, adamw, groups) is None
    assert "of another model or optimizer" in caplog.text
    sgd_groups = make_optimizer(model, sgd.training).state_dict()["param_groups"]
    kept = kept_optimizer(path, 2, sgd, sgd_groups)
    assert kept is not None and all(isinstance(v["momentum_buffer"], torch.Tensor) for v in kept["state"].values())

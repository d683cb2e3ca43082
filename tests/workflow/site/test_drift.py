"""``training.drift_correction = "scaffold"``: SCAFFOLD's control variates derived at the site."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.federation.state import default_state_path
from fedseg.train.checkpoint import load_checkpoint, read_tensors
from fedseg.workflow.coordinator.aggregate import aggregate_round
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.site.drift import drift_path, federation_control, keep_drift, kept_drift, lr_sum, site_control
from fedseg.workflow.site.train import train_local
from tests._train_data import make_dataset, tiny_plan

STEPS = 3


def test_the_control_variates_by_hand(plan, tmp_path: Path) -> None:
    p = tiny_plan(plan, drift_correction="scaffold")
    path = tmp_path / "state.json.drift-r0001.h5"
    keep_drift(path, 1, p, start={"w": np.array([1.0, 2.0])}, trained={"w": np.array([0.4, 2.5])}, total=0.2, used=None)
    # an uncorrected round: c_i = (x - y) / Σ η = (0.6, -0.5) / 0.2
    drift = kept_drift(path, 2, p, {"w": np.array([0.7, 2.1])}, ["w"])
    assert drift is not None
    np.testing.assert_allclose(drift.site["w"], [3.0, -2.5], rtol=1e-6)
    np.testing.assert_allclose(drift.federation["w"], [1.5, -0.5], rtol=1e-6)  # (x0 - x1) / 0.2
    np.testing.assert_allclose(drift.correction()["w"], [-1.5, 2.0], rtol=1e-6)  # c - c_i
    # corrected round: c_i+ = c_i - c + (x - y) / Σ η = (3 - 1.5 + 1, -2.5 + 0.5 + 1)
    np.testing.assert_allclose(site_control(np.array([0.7, 2.1]), np.array([0.5, 1.9]), 0.2,
                                            (drift.federation["w"], drift.site["w"])), [2.5, -1.0], rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_the_globals_move_is_scaffolds_server_variate(sites: int, rounds: int, seed: int) -> None:
    """With every site in every round and FedAvg, c derived from two globals is option II's server c."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(sites))
    total = float(rng.uniform(0.01, 1.0))
    x = rng.normal(size=5).astype(np.float32)
    server_c = np.zeros(5, np.float32)
    controls = [np.zeros(5, np.float32) for _ in range(sites)]
    previous = None
    for _ in range(rounds):
        derived = federation_control(previous, x, total) if previous is not None else np.zeros(5, np.float32)
        np.testing.assert_allclose(derived, server_c, atol=2e-3, rtol=1e-3)
        ys = [x - rng.normal(size=5).astype(np.float32) for _ in range(sites)]  # any local training
        new = [site_control(x, y, total, (server_c, c) if previous is not None else None) for y, c in zip(ys, controls)]
        server_c = server_c + sum(w * (n - c) for w, n, c in zip(weights, new, controls))  # the paper's server
        controls = new
        previous, x = x, sum(w * y for w, y in zip(weights, ys)).astype(np.float32)  # FedAvg, server step 1


def test_the_loop_moves_the_weights_by_the_learning_rate_times_the_correction(plan, tmp_path: Path) -> None:
    import torch

    from fedseg.data.dataset import load_dataset
    from fedseg.model.spec import build_model, state_to_numpy
    from fedseg.train.loop import train
    from fedseg.train.sampling import index_case

    p = tiny_plan(plan, lr_schedule="constant", learning_rate=1e-2)
    dataset = load_dataset(make_dataset(tmp_path / "site", train=1, val=0, shape=(16, 16, 16)))
    cases = [index_case(dataset.reader(c), np.random.default_rng(0)) for c in dataset.split("train")]
    model = build_model(p.model)
    start = state_to_numpy(model.state_dict())
    shift = {n: np.full(t.shape, 0.5, np.float32) for n, t in model.named_parameters()}
    plain, steered = build_model(p.model, start), build_model(p.model, start)
    train(plain, cases, p.training, total_steps=1, device=torch.device("cpu"))
    train(steered, cases, p.training, total_steps=1, device=torch.device("cpu"), drift=shift)
    for (name, a), b in zip(plain.named_parameters(), steered.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy() - 1e-2 * 0.5, atol=1e-6, err_msg=name)


def _rounds(plan, site_keys, tmp_path: Path, **training):  # noqa: ANN001, ANN202 - test helper
    p = tiny_plan(plan, steps_per_round=STEPS, drift_correction="scaffold", **training).with_settings(rounds=3)
    g0 = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=3)
    data = {s: make_dataset(tmp_path / s, train=2, val=1, shape=(16, 16, 16), seed=i)
            for i, s in enumerate(("site-a", "site-b"))}

    def round_(r: int, g: Path) -> Path:
        outs = []
        for s, d in data.items():
            outs.append(tmp_path / "updates" / f"{s}-r{r}.fedseg")
            train_local(p, g, d, site_keys[s], outs[-1], device="cpu", validate_after=False)
        new = tmp_path / "fed" / f"global-r{r:04d}.fedseg"
        aggregate_round(plan=p, global_path=g, key=site_keys["coordinator"], update_paths=outs, out=new)
        return new

    return p, data, g0, round_


def _tensors(plan, artifact: Path) -> dict[str, np.ndarray]:  # noqa: ANN001 - test helper
    from fedseg.workflow.site.received import read_global

    return {k: np.asarray(v, np.float32) for k, v in read_global(plan, artifact).tensors.items()}


def test_two_real_rounds_keep_the_variates_and_correct_round_two(plan, site_keys, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import fedseg.train.loop as loop

    steered: list[dict[str, np.ndarray] | None] = []
    real = loop.train

    def spy(*args, drift=None, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records what each round is steered by
        steered.append(drift)
        return real(*args, drift=drift, **kwargs)

    monkeypatch.setattr(loop, "train", spy)
    p, data, g0, round_ = _rounds(plan, site_keys, tmp_path)
    state = default_state_path(data["site-a"], p.federation_id)
    g1 = round_(1, g0)
    first = drift_path(state, 1)
    tensors, attrs = read_tensors(first)
    assert attrs["round"] == "1"
    x0 = _tensors(p, g0)
    names = sorted(n[len("global/"):] for n in tensors if n.startswith("global/"))
    assert names and all(np.array_equal(tensors[f"global/{n}"], x0[n]) for n in names)
    total = lr_sum(p.training, STEPS, (0.0, 1 / 3))  # round 1 of 3 on the federation's cosine
    assert float(attrs["lr_sum"]) == pytest.approx(total)
    with caplog.at_level(logging.WARNING, logger="fedseg"):
        g2 = round_(2, g1)
    assert "without drift correction" not in caplog.text
    assert not first.exists() and drift_path(state, 2).exists()  # round 1's file goes once round 2 is complete
    second, _ = read_tensors(drift_path(state, 2))
    x1 = _tensors(p, g1)
    assert not np.array_equal(x1[names[0]], _tensors(p, g2)[names[0]])
    # what round 2 derived as c is round 1's move of the global; its c_i+ follows option II from its trained model
    c = {n: federation_control(x0[n], x1[n], total) for n in names}
    _, trained = load_checkpoint(tmp_path / "updates" / "site-a-r2.fedseg.ckpt")
    assert steered[0] is None and steered[1] is None  # round 1 (sites a, b): nothing kept yet
    for n in names:  # round 2, site a: steered by c - c_i
        np.testing.assert_allclose(steered[2][n], c[n] - tensors[f"control/{n}"], rtol=1e-5, atol=1e-6, err_msg=n)
    for n in names:
        expected = site_control(x1[n], trained[n], lr_sum(p.training, STEPS, (1 / 3, 2 / 3)),
                                (c[n], tensors[f"control/{n}"]))
        np.testing.assert_allclose(second[f"control/{n}"], expected, rtol=1e-4, atol=1e-5, err_msg=n)


def test_a_variate_of_another_round_trains_uncorrected(plan, site_keys, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    p, data, g0, round_ = _rounds(plan, site_keys, tmp_path)
    g1 = round_(1, g0)
    state = default_state_path(data["site-a"], p.federation_id)
    with h5py.File(drift_path(state, 1), "r+") as f:
        f.attrs["round"] = "7"
    with caplog.at_level(logging.WARNING, logger="fedseg"):
        round_(2, g1)
    assert "not of round 1 of this plan; round 2 trains without drift correction" in caplog.text
    # the uncorrected round keeps c_i = (x - y) / Σ η, with no c or old c_i in it
    kept, _ = read_tensors(drift_path(state, 2))
    x1 = _tensors(p, g1)
    _, trained = load_checkpoint(tmp_path / "updates" / "site-a-r2.fedseg.ckpt")
    total = lr_sum(p.training, STEPS, (1 / 3, 2 / 3))
    for n in (k[len("control/"):] for k in kept if k.startswith("control/")):
        np.testing.assert_allclose(kept[f"control/{n}"], federation_control(x1[n], trained[n], total),
                                   rtol=1e-5, atol=1e-6, err_msg=n)


@pytest.mark.parametrize(("aggregation", "privacy", "named"), [
    ({"strategy": "fedavgm"}, {}, "'fedavgm'"),
    ({"strategy": "median"}, {}, "'median'"),
    ({"clip_norm": 1.0}, {}, "clip_norm = 1"),
    ({"weighting": "uniform"}, {"mode": "central", "central_noise_multiplier": 1.0}, '"central"'),
])
def test_a_plan_refuses_scaffold_where_the_global_does_not_move_by_the_mean(plan, aggregation, privacy,
                                                                          named: str) -> None:
    from fedseg.configs.aggregation import AggregationConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.errors import PlanError
    from fedseg.privacy.config import PrivacyConfig

    scaffold = tiny_plan(plan, drift_correction="scaffold")
    agg = config_from_mapping(AggregationConfig, aggregation, "aggregation")
    priv = config_from_mapping(PrivacyConfig, privacy, "privacy")
    with pytest.raises(PlanError, match="drift_correction") as err:
        scaffold.with_settings(aggregation=agg, privacy=priv)
    assert named in str(err.value)
    tiny_plan(plan).with_settings(aggregation=agg, privacy=priv)  # the same settings without scaffold are fine


def test_scaffold_refuses_a_step_count_or_strategy_override_before_training(plan, site_keys, tmp_path: Path) -> None:
    from fedseg.errors import PlanError, TrainingError

    p, data, g0, _ = _rounds(plan, site_keys, tmp_path)
    out = tmp_path / "updates" / "site-a-r1.fedseg"
    with pytest.raises(TrainingError, match=f"steps_per_round = {STEPS} steps a round; --steps/--epochs cannot "
                                            f"make it {STEPS + 1}"):
        train_local(p, g0, data["site-a"], site_keys["site-a"], out, device="cpu", steps=STEPS + 1)
    assert not out.exists() and not list(tmp_path.rglob("*.drift-*.h5"))
    train_local(p, g0, data["site-a"], site_keys["site-a"], out, device="cpu", steps=STEPS, validate_after=False)
    with pytest.raises(PlanError, match="'fedadam' \\(--strategy\\)"):
        aggregate_round(plan=p, global_path=g0, key=site_keys["coordinator"], update_paths=[out],
                        out=tmp_path / "fed" / "global-r0001.fedseg", strategy="fedadam")
    assert not (tmp_path / "fed" / "global-r0001.fedseg").exists()

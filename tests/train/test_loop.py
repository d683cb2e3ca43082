"""The training loop: overfitting two tiny cases, schedules, FedProx, SGD, and a NaN loss refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fedseg.configs.model import ModelConfig
from fedseg.configs.training import LrSchedule, TrainingConfig
from fedseg.data.dataset import load_dataset
from fedseg.errors import TrainingError
from fedseg.model.spec import build_model, state_to_numpy
from fedseg.train.loop import lr_at, make_optimizer, train
from fedseg.train.sampling import index_case
from tests._train_data import make_dataset

MODEL = ModelConfig(widths=(4, 8, 16), kernels=((3, 3, 3),) * 3, strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
                    convs_per_stage=1)


def _cases(root: Path, **kw):
    ds = load_dataset(make_dataset(root, val=0, **kw))
    return [index_case(ds.reader(c), np.random.default_rng(0)) for c in ds.split("train")]


def _config(**kw) -> TrainingConfig:
    base = dict(patch_size=(16, 16, 16), batch_size=2, learning_rate=3e-2, lr_schedule=LrSchedule.CONSTANT,
                flip=False, intensity_augmentation=False, amp=False)
    base.update(kw)
    return TrainingConfig(**base)


@pytest.mark.slow
def test_overfits_two_tiny_cases(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(MODEL)
    cases = _cases(tmp_path / "d", train=2, shape=(16, 16, 16))
    out = train(model, cases, _config(patch_size=(12, 12, 12)), total_steps=120, device=torch.device("cpu"))
    first, last = np.mean(out.losses[:5]), np.mean(out.losses[-10:])
    assert len(out.losses) == 120 and out.patches == 240
    assert last < 0.2 * first, f"loss fell only from {first:.3f} to {last:.3f}"


def test_optimizer_choice() -> None:
    model = build_model(MODEL)
    sgd = make_optimizer(model, _config(optimizer="sgd", momentum=0.9))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"]
    assert isinstance(make_optimizer(model, _config(optimizer="adamw")), torch.optim.AdamW)


def test_lr_schedules_by_hand() -> None:
    assert lr_at(0, 100, 1.0, LrSchedule.COSINE) == 1.0
    assert math.isclose(lr_at(50, 100, 1.0, LrSchedule.COSINE), 0.5)
    assert math.isclose(lr_at(50, 100, 1.0, LrSchedule.POLY), 0.5**0.9)
    assert lr_at(99, 100, 2.0, LrSchedule.CONSTANT) == 2.0
    assert lr_at(50, 100, 1.0, "cosine") == lr_at(50, 100, 1.0, LrSchedule.COSINE)


def test_fedprox_keeps_weights_closer_to_the_global(tmp_path: Path) -> None:
    cases = _cases(tmp_path / "d", train=1, shape=(16, 16, 16))
    torch.manual_seed(1)
    start = build_model(MODEL).state_dict()
    anchor = {k: v.clone() for k, v in start.items()}

    def distance(mu: float, optimizer: str) -> float:
        model = build_model(MODEL)
        model.load_state_dict(start)
        train(model, cases, _config(fedprox_mu=mu, optimizer=optimizer, learning_rate=1e-2), total_steps=6,
              device=torch.device("cpu"), global_weights=anchor)
        w = state_to_numpy(model.state_dict())
        return float(sum(((w[k] - anchor[k].numpy()) ** 2).sum() for k in w))

    assert distance(100.0, "sgd") < distance(0.0, "sgd")
    with pytest.raises(TrainingError, match="global weights"):
        train(build_model(MODEL), cases, _config(fedprox_mu=1.0), total_steps=1, device=torch.device("cpu"))


def test_nan_loss_raises(tmp_path: Path) -> None:
    cases = _cases(tmp_path / "d", train=1, shape=(16, 16, 16), nan_case=True)
    with pytest.raises(TrainingError, match="step 1"):
        train(build_model(MODEL), cases, _config(), total_steps=3, device=torch.device("cpu"))


def test_bad_arguments() -> None:
    with pytest.raises(TrainingError, match="no cases"):
        train(build_model(MODEL), [], _config(), total_steps=3, device=torch.device("cpu"))

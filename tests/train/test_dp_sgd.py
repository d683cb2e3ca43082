"""DP-SGD at the site: Poisson sampling, per-case clipping bounds, the noise scale, empty batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedseg.configs.model import ModelConfig
from fedseg.configs.training import LrSchedule, TrainingConfig
from fedseg.data.dataset import load_dataset
from fedseg.model.spec import build_model
from fedseg.train.dp_sgd import DPSGD, clip_scale, noised_mean, poisson_sample, private_gradient
from fedseg.train.loop import train
from fedseg.train.sampling import PatchBatches, index_case
from tests._train_data import make_dataset

MODEL = ModelConfig(widths=(2, 4), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    ds = load_dataset(make_dataset(tmp_path_factory.mktemp("d"), train=3, val=0, shape=(12, 12, 12)))
    return [index_case(ds.reader(c), np.random.default_rng(0)) for c in ds.split("train")]


def _dataset(cases) -> PatchBatches:
    return PatchBatches(cases, patch_size=(8, 8, 8), batch_size=1, foreground_fraction=0.5, seed=0, flip=False,
                        intensity=False, total_steps=1)


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_poisson_sampling_rate_and_empty_batches() -> None:
    rng = np.random.default_rng(0)
    sizes = [len(poisson_sample(20, 0.1, rng)) for _ in range(2000)]
    assert np.mean(sizes) == pytest.approx(2.0, rel=0.05)
    assert sizes.count(0) / len(sizes) == pytest.approx(0.9**20, abs=0.03)  # empty batches happen
    assert len(poisson_sample(5, 0.0, rng)) == 0 and len(poisson_sample(5, 1.0, rng)) == 5


def test_clip_scale_by_hand() -> None:
    assert clip_scale(4.0, 1.0) == 0.25 and clip_scale(0.5, 1.0) == 1.0 and clip_scale(0.0, 1.0) == 1.0


def test_clipping_bounds_every_per_case_gradient(cases) -> None:
    # With q = 1 and no noise the step's gradient is the sum of the clipped per-case gradients over n:
    # its norm is at most the clip, whatever the loss surface, while the unclipped mean is far larger.
    torch.manual_seed(0)
    model = build_model(MODEL)
    clip = 1e-3
    loss, sampled = private_gradient(model, _dataset(cases), DPSGD(0.0, clip, 1.0, seed=1), device=CPU,
                                     rng=np.random.default_rng(1), noise=torch.Generator().manual_seed(1))
    assert sampled == 3 and loss is not None
    assert float(_grads(model).norm()) <= clip * (1 + 1e-5)
    single = []
    for case in cases:  # each case alone, clipped: bounded by the clip too
        private_gradient(model, _dataset([case]), DPSGD(0.0, clip, 1.0), device=CPU,
                         rng=np.random.default_rng(2), noise=torch.Generator())
        single.append(float(_grads(model).norm()))
    assert max(single) <= clip * (1 + 1e-5) and min(single) > 0.5 * clip  # the raw gradients were larger


def test_noise_scale_matches_the_formula() -> None:
    zeros = [torch.zeros(200_000)]
    (noisy,) = noised_mean(zeros, std=1.5 * 0.5, expected_batch=2.0, generator=torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(1.5 * 0.5 / 2.0, rel=0.01)
    assert abs(float(noisy.mean())) < 0.01


def test_an_empty_poisson_batch_takes_a_noise_only_step(cases) -> None:
    model = build_model(MODEL)
    loss, sampled = private_gradient(model, _dataset(cases), DPSGD(2.0, 1.0, 1e-9), device=CPU,
                                     rng=np.random.default_rng(0), noise=torch.Generator().manual_seed(0))
    assert (loss, sampled) == (None, 0)
    assert torch.isfinite(_grads(model)).all() and float(_grads(model).abs().max()) > 0


def test_train_with_dp_sgd_runs_through_empty_batches(cases) -> None:
    model = build_model(MODEL)
    config = TrainingConfig(patch_size=(8, 8, 8), batch_size=1, learning_rate=1e-2, lr_schedule=LrSchedule.CONSTANT,
                            flip=False, intensity_augmentation=False, amp=False)
    before = [p.detach().clone() for p in model.parameters()]
    out = train(model, cases, config, total_steps=6, device=CPU, private=DPSGD(1.0, 1.0, 0.2, seed=3))
    assert out.steps == 6 and len(out.losses) < 6 <= out.patches + 6  # some steps sampled nothing
    assert out.patches >= len(out.losses) >= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

"""Patient-level DP-SGD: Poisson sampling of cases, per-case clipping, Gaussian noise (Abadi et al., CCS 2016).

The privacy unit is a case (a patient): every step samples each training case independently with
probability ``q`` (Poisson sampling, the mechanism the RDP accountant in :mod:`fedseg.privacy` bounds),
draws ONE patch per sampled case, computes that case's gradient alone, scales it to L2 norm at most
``max_grad_norm`` and sums; Gaussian noise of std ``noise_multiplier * max_grad_norm`` is added to the
sum, which is divided by the *expected* batch size ``q * n`` (as Opacus does with Poisson sampling: the
real batch size is data-dependent and must not be used).

Decisions written down here:

* Per-case gradients by micro-batches of one: exact for this U-Net, whose InstanceNorm never mixes
  samples, and working for every layer (``ConvTranspose3d`` included) without Opacus's hooks. Each
  sampled case costs one forward and backward pass of a single patch.
* An empty Poisson batch (small sites draw them often) still takes a step: its gradient is pure noise,
  as the mechanism requires; the step records no loss.
* Sampling and noise come from generators seeded with ``os.urandom`` unless a test passes a seed: a
  seed derived from the (public) plan would let anyone replay the noise. So a DP-SGD run is not
  bit-reproducible, and a resumed run draws fresh randomness for its remaining steps.
* Mixed precision and the plain ``grad_clip`` are off under DP-SGD (per-case clipping replaces it).
* The noise comes from torch's Mersenne Twister, not a cryptographic generator; floating-point attacks on
  the Gaussian's low bits (Mironov, CCS 2012) are not defended against.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fedseg.train.losses import dice_bce_loss
from fedseg.train.sampling import PatchBatches

__all__ = ["DPSGD", "clip_scale", "noised_mean", "poisson_sample", "private_gradient"]


@dataclass(frozen=True)
class DPSGD:
    """The DP-SGD mechanism of one site: noise multiplier, per-case clip, sampling rate, and test seed."""

    noise_multiplier: float
    max_grad_norm: float
    sampling_rate: float
    seed: int | None = None  # None = os.urandom (always, outside tests)

    def generators(self) -> tuple[np.random.Generator, torch.Generator]:
        """Return the sampling and noise generators (secret unless a seed was given)."""
        seed = self.seed if self.seed is not None else int.from_bytes(os.urandom(8), "little")
        return np.random.default_rng([seed, 0]), torch.Generator().manual_seed(seed)


def poisson_sample(n: int, q: float, rng: np.random.Generator) -> np.ndarray:
    """Return the indices of the cases sampled this step: each of ``n`` independently with probability ``q``."""
    return np.flatnonzero(rng.random(n) < q)


def clip_scale(norm: float, clip: float) -> float:
    """Return the factor that brings a gradient of L2 ``norm`` to at most ``clip`` (1 when it is already)."""
    return min(1.0, clip / norm) if norm > 0 else 1.0


def noised_mean(summed: Sequence[torch.Tensor], *, std: float, expected_batch: float,
                generator: torch.Generator) -> list[torch.Tensor]:
    """Return ``(sum + N(0, std^2)) / expected_batch`` per tensor; the noise is drawn on the CPU."""
    out = []
    for tensor in summed:
        noise = torch.normal(0.0, std, size=tuple(tensor.shape), generator=generator) if std > 0 else 0.0
        out.append((tensor + (noise.to(tensor.device) if std > 0 else 0.0)) / expected_batch)
    return out


def private_gradient(model: torch.nn.Module, dataset: PatchBatches, dp: DPSGD, *, device: torch.device,
                     rng: np.random.Generator, noise: torch.Generator) -> tuple[float | None, int]:
    """Set each parameter's ``.grad`` to the DP-SGD gradient of one step; return (mean loss or None, cases).

    The loss is None for an empty batch. Gradients are per case (one patch each), clipped, summed,
    noised and divided by the expected batch size ``q * n`` (see the module docstring).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    summed = [torch.zeros_like(p) for p in params]
    losses = []
    for index in poisson_sample(len(dataset.cases), dp.sampling_rate, rng):
        image, label = dataset.patch(dataset.cases[int(index)], rng)
        image_t = torch.from_numpy(np.ascontiguousarray(image[None])).to(device)
        label_t = torch.from_numpy(np.ascontiguousarray(label[None])).to(device)
        loss = dice_bce_loss(model(image_t), label_t)
        grads = torch.autograd.grad(loss, params)
        norm = float(torch.sqrt(sum((g.detach().float() ** 2).sum() for g in grads)))
        scale = clip_scale(norm, dp.max_grad_norm)
        for total, grad in zip(summed, grads):
            total.add_(grad.detach(), alpha=scale)
        losses.append(float(loss.detach()))
    expected = max(dp.sampling_rate * len(dataset.cases), 1e-12)
    for param, grad in zip(params, noised_mean(summed, std=dp.noise_multiplier * dp.max_grad_norm,
                                               expected_batch=expected, generator=noise)):
        param.grad = grad
    return (float(np.mean(losses)) if losses else None), len(losses)

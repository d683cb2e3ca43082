"""The local training loop: a function over small parts (sampler, augmentation, loss, optimizer, schedule).

One optimizer step per batch of patches; the batch of step ``k`` is a pure function of ``(seed, k)``
(see :mod:`fedseg.train.sampling`) and the learning rate a pure function of ``k``, so a run resumed from a
checkpoint at step ``k`` (weights + optimizer state) ends with the same weights as one that never stopped
(on the CPU, where convolutions are deterministic). FedProx (Li et al., "Federated Optimization in
Heterogeneous Networks", MLSys 2020) adds ``mu/2 * ||w - w_global||^2`` to the loss; a ``drift`` correction
(SCAFFOLD, see :mod:`fedseg.workflow.site.drift`) moves the weights by ``-lr * drift`` after every step. On CUDA the model
runs in mixed precision (float16 autocast with a gradient scaler) and ``channels_last_3d`` memory layout.
With ``private`` set, each step's gradient is the DP-SGD one of :mod:`fedseg.train.dp_sgd` instead
(full precision, no plain gradient clipping, its own secret sampling; see there).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedseg.configs.training import LrSchedule, LrScope, OptimizerName, TrainingConfig
from fedseg.errors import TrainingError
from fedseg.train.losses import dice_bce_loss
from fedseg.train.sampling import CASE_MEMORY_BYTES, CaseIndex, PatchBatches

if TYPE_CHECKING:
    from fedseg.train.dp_sgd import DPSGD

__all__ = ["Phase", "StepInfo", "TrainOutcome", "lr_at", "make_optimizer", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    """A progress event outside the optimizer steps, e.g. ``validate-before`` case 2 of 4."""

    name: str
    done: int
    total: int


@dataclass(frozen=True)
class StepInfo:
    """What the progress callback receives after every optimizer step."""

    step: int  # steps done so far (1-based after the first step)
    total: int
    loss: float
    lr: float
    patches_per_s: float
    data_wait_share: float


@dataclass
class TrainOutcome:
    """The result of :func:`train`: per-step losses of the whole run (resumed steps included) and timings."""

    steps: int
    losses: list[float]
    seconds: float = 0.0
    data_wait_seconds: float = 0.0
    patches: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None

    @property
    def final_loss(self) -> float:
        """Return the mean loss of the last tenth of the steps (at least one step)."""
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return float(np.mean(tail)) if tail else float("nan")


def lr_at(step: int, total: int, base: float, schedule: LrSchedule,
          window: tuple[float, float] = (0.0, 1.0)) -> float:
    """Return the learning rate of (0-based) ``step`` of ``total``: constant, cosine to 0, or poly (power 0.9).

    The ``total`` steps run over the part ``window`` = (start, end) of the schedule's curve: (0, 1) is the
    whole curve; round r of R under a federation-wide schedule is ((r - 1) / R, r / R).
    """
    start, end = window
    frac = start + (end - start) * min(max(step / max(total, 1), 0.0), 1.0)
    frac = min(max(frac, 0.0), 1.0)
    schedule = LrSchedule(schedule)  # accept the plain string too
    if schedule is LrSchedule.COSINE:
        return base * 0.5 * (1.0 + math.cos(math.pi * frac))
    if schedule is LrSchedule.POLY:
        return base * (1.0 - frac) ** 0.9
    return base


def round_window(config: TrainingConfig, round_: int, rounds: int) -> tuple[float, float]:
    """Return the part of the learning-rate curve round ``round_`` of ``rounds`` trains on (``lr_scope``)."""
    if LrScope(config.lr_scope) is LrScope.ROUND or rounds < 1:
        return (0.0, 1.0)
    r = min(max(round_, 1), rounds)
    return ((r - 1) / rounds, r / rounds)


def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """Return AdamW or SGD (Nesterov momentum) over the model's parameters as ``config`` says."""
    if OptimizerName(config.optimizer) is OptimizerName.SGD:
        return torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        if enabled:
            torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def _batches(dataset: PatchBatches, start: int, total: int, workers: int, pin: bool) -> Iterator[Any]:
    if workers == 0:  # in-process: no fork, no prefetch
        for step in range(start, total):
            yield dataset[step]
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=None, sampler=range(start, total), num_workers=workers,
                        pin_memory=pin, prefetch_factor=2, persistent_workers=False)
    yield from loader


def _check_finite(value: float | None, step: int) -> None:
    if value is not None and not math.isfinite(value):
        raise TrainingError(f"the training loss became {value} at step {step + 1}; the model diverged "
                            "(lower training.learning_rate, or check the dataset for NaN voxels)")


def _plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
                prox: list[tuple[torch.Tensor, torch.Tensor]], config: TrainingConfig, device: torch.device,
                memory_format: torch.memory_format, amp: bool, scaler: torch.amp.GradScaler) -> tuple[float, int]:
    """Compute the loss of one batch and its (scaled, clipped) gradients; return (loss, patches)."""
    image = batch[0].to(device, non_blocking=True).contiguous(memory_format=memory_format)
    label = batch[1].to(device, non_blocking=True)
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        logits = model(image)
    loss = dice_bce_loss(logits, label)
    if prox:
        loss = loss + 0.5 * config.fedprox_mu * sum(((w - g) ** 2).sum() for w, g in prox)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value, int(image.shape[0])
    scaler.scale(loss).backward()
    if config.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    return value, int(image.shape[0])


def train(
    model: torch.nn.Module,
    cases: Sequence[CaseIndex],
    config: TrainingConfig,
    *,
    total_steps: int,
    device: torch.device,
    start_step: int = 0,
    optimizer_state: Mapping[str, Any] | None = None,
    losses: Sequence[float] = (),
    global_weights: Mapping[str, torch.Tensor] | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[int, torch.nn.Module, torch.optim.Optimizer, list[float]], None] | None = None,
    progress: Callable[[StepInfo], None] | None = None,
    private: DPSGD | None = None,
    schedule_window: tuple[float, float] = (0.0, 1.0),
    drift: Mapping[str, np.ndarray] | None = None,
) -> TrainOutcome:
    """Train ``model`` in place from ``start_step`` to ``total_steps`` on patches of ``cases``.

    ``optimizer_state`` (a torch optimizer state dict) and ``losses`` continue a resumed run.
    ``global_weights`` are the received global parameters, needed when ``config.fedprox_mu`` > 0.
    ``on_checkpoint(step, model, optimizer, losses)`` runs every ``checkpoint_every`` steps (0 = never);
    ``progress`` after every step. A non-finite loss raises TrainingError (the caller exports nothing).
    ``private`` trains with DP-SGD (an empty Poisson batch takes a noise-only step and records no loss).
    ``schedule_window`` is the part of the learning-rate curve these steps run over (:func:`lr_at`).
    ``drift`` (by parameter name) is subtracted, times the step's learning rate, after every optimizer step.
    The outcome's ``optimizer_state`` is the optimizer's state dict at the end (for a caller that keeps it).
    """
    if not 0.0 <= schedule_window[0] <= schedule_window[1] <= 1.0:
        raise TrainingError(f"the learning-rate schedule window must lie in [0, 1], got {schedule_window}")
    if not cases:
        raise TrainingError("the train split has no cases; nothing to train on")
    if not 0 <= start_step <= total_steps:
        raise TrainingError(f"cannot resume at step {start_step} of a run of {total_steps} steps")
    cuda = device.type == "cuda"
    amp = cuda and config.amp and private is None
    memory_format = torch.channels_last_3d if cuda else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    model.train()
    optimizer = make_optimizer(model, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(dict(optimizer_state))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    prox: list[tuple[torch.Tensor, torch.Tensor]] = []
    if config.fedprox_mu > 0:
        if global_weights is None:
            raise TrainingError("training.fedprox_mu > 0 needs the global weights")
        named = dict(model.named_parameters())
        prox = [(named[n], global_weights[n].to(device)) for n in named]
    steer: list[tuple[torch.Tensor, torch.Tensor]] = []
    if drift is not None:
        named = dict(model.named_parameters())
        missing = sorted(set(named) - set(drift))
        if missing:
            raise TrainingError(f"the drift correction has no tensor for parameter {missing[0]}")
        steer = [(named[n], torch.as_tensor(np.asarray(drift[n], np.float32)).to(device)) for n in named]
    workers = config.num_workers if private is None else 0
    dataset = PatchBatches(cases, patch_size=config.patch_size, batch_size=config.batch_size,
                           foreground_fraction=config.foreground_fraction, seed=config.seed, flip=config.flip,
                           intensity=config.intensity_augmentation, total_steps=total_steps,
                           memory_bytes=CASE_MEMORY_BYTES if workers == 0 else 0)
    for case in cases:  # never fork an open HDF5 handle into DataLoader workers
        case.reader.close()
    outcome = TrainOutcome(steps=start_step, losses=list(losses))
    t_start = time.perf_counter()
    batches = _batches(dataset, start_step, total_steps, workers, pin=cuda)
    secret = private.generators() if private is not None else None
    with _deterministic(not cuda), contextlib.closing(batches):  # closing stops loader workers on errors
        step = start_step
        while step < total_steps:
            t0 = time.perf_counter()
            lr = lr_at(step, total_steps, config.learning_rate, config.lr_schedule, schedule_window)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            if private is not None and secret is not None:  # (secret is set exactly when private is)
                from fedseg.train.dp_sgd import private_gradient

                t1 = t0
                value, sampled = private_gradient(model, dataset, private, device=device, rng=secret[0],
                                                  noise=secret[1])
                for weight, anchor in prox:  # the proximal term's gradient uses no data: added after the noise
                    weight.grad.add_(weight.detach() - anchor, alpha=config.fedprox_mu)
            else:
                batch = next(batches)
                t1 = time.perf_counter()
                value, sampled = _plain_step(model, optimizer, batch, prox, config, device, memory_format, amp, scaler)
            _check_finite(value, step)
            scale = scaler.get_scale() if amp else 1.0
            scaler.step(optimizer)
            scaler.update()
            if steer and scaler.get_scale() >= scale:  # a step the scaler skipped (inf/NaN gradients) moves nothing
                with torch.no_grad():
                    for weight, shift in steer:
                        weight.add_(shift.view_as(weight), alpha=-lr)
            step += 1
            t2 = time.perf_counter()
            if value is not None:
                outcome.losses.append(value)
            outcome.steps = step
            outcome.patches += sampled
            outcome.data_wait_seconds += t1 - t0
            outcome.seconds = t2 - t_start
            if progress is not None:
                progress(StepInfo(step=step, total=total_steps, loss=value if value is not None else math.nan, lr=lr,
                                  patches_per_s=outcome.patches / max(outcome.seconds, 1e-9),
                                  data_wait_share=outcome.data_wait_seconds / max(outcome.seconds, 1e-9)))
            if on_checkpoint is not None and checkpoint_every > 0 and step % checkpoint_every == 0 and step < total_steps:
                on_checkpoint(step, model, optimizer, outcome.losses)
    for p in model.parameters():
        if not torch.isfinite(p).all():
            raise TrainingError("the trained weights contain NaN or infinity; nothing is exported")
    model.to("cpu", memory_format=torch.contiguous_format)
    outcome.optimizer_state = optimizer.state_dict()
    return outcome

"""Train the received global on this site's data, keep a checkpoint folder, and export the update.

Conventions chosen here:

* The update of a global of round ``r`` is for round ``r + 1`` (``site-a-r0001.fedseg`` answers
  ``global-r0000.fedseg``); its ``parent_sha256`` is the global's payload digest.
* ``num_examples`` is the number of training cases (capped at ``training.max_examples``), not patches:
  every site draws the same number of patches per step, so cases are what measures a site's data.
* One epoch is ``ceil(train cases / batch size)`` steps (each case seen once on average).
* The checkpoint folder defaults to ``<out>.ckpt/``; the site state (last accepted global round per
  federation) lives with the site's data, ``DATA/.fedseg/state-<federation-id>.json``
  (:func:`fedseg.federation.state.default_state_path`), whatever ``out`` is; ``state_path`` overrides it.
* Under ``[privacy] mode = "dp-sgd"`` the site trains with DP-SGD (:mod:`fedseg.train.dp_sgd`); every
  training run it starts is recorded beside the site state (:mod:`fedseg.workflow.site.privacy_spent`)
  and its ε is the composition of them all. A run that would pass the plan's ``target_epsilon`` is
  refused before anything is trained; ``steps``/``epochs`` giving another step count than
  ``steps_per_round`` are refused, as the plan's budget was derived for it.
* Under ``training.drift_correction = "scaffold"`` (:mod:`fedseg.workflow.site.drift`) ``steps``/``epochs``
  other than ``steps_per_round`` are refused too: every site's control variate is normalised by the
  learning rates of that many steps.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configs.training import DriftCorrection
from fedseg.configtools import config_to_dict
from fedseg.errors import DatasetError, TrainingError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.fsutil import refuse_output_overlap
from fedseg.workflow.site.drift import drift_path, keep_drift, kept_drift, lr_sum
from fedseg.workflow.site.kept_optimizer import kept_optimizer, optimizer_fit, optimizer_path, prune_kept
from fedseg.workflow.site.received import check_dataset, read_global, site_for_round, site_in_chain
from fedseg.workflow.site.record import CheckpointRecord

__all__ = ["TrainResult", "round_seed", "train_local"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_local` did: the checkpoint, the update (None with ``export=False``) and the figures."""

    checkpoint_dir: Path
    update_path: Path | None
    round: int
    site: str
    steps: int
    num_examples: int
    train_loss: float
    val_dice_before: dict[str, float] | None
    val_dice_after: dict[str, float] | None
    seconds: float
    data_wait_share: float
    state_path: Path
    privacy: dict[str, Any] | None = None


def round_seed(seed: int, round_: int, site_id: str) -> int:
    """Return the training seed of ``site_id`` in ``round_`` derived from the plan's ``seed``."""
    return int(np.random.default_rng([seed, round_, zlib.crc32(site_id.encode())]).integers(2**31 - 1))


def _total_steps(plan: Plan, n_train: int, steps: int | None, epochs: int | None) -> int:
    if steps is not None and epochs is not None:
        raise TrainingError("give either steps or epochs, not both")
    if steps is not None:
        if steps < 1:
            raise TrainingError(f"steps must be >= 1, got {steps}")
        return steps
    if epochs is not None:
        if epochs < 1:
            raise TrainingError(f"epochs must be >= 1, got {epochs}")
        return epochs * math.ceil(n_train / plan.training.batch_size)
    return plan.training.steps_per_round


def _labelled_splits(dataset: Any) -> tuple[list[Any], list[Any]]:
    """Return the train and val cases; refuse an empty train split or an unlabelled case."""
    train_cases, val_cases = dataset.split("train"), dataset.split("val")
    if not train_cases:
        raise TrainingError(f"{dataset.root}: the train split is empty; nothing to train on")
    unlabelled = []
    for case in train_cases + val_cases:
        with dataset.reader(case) as reader:
            if not reader.has_label:
                unlabelled.append(case.id)
    if unlabelled:
        raise DatasetError(f"{dataset.root}: train/val cases need labels; unlabelled: {', '.join(unlabelled[:5])}")
    return train_cases, val_cases


def _resumable(ckpt_dir: Path, fresh: CheckpointRecord, resume: bool) -> CheckpointRecord | None:
    """Return the record of an existing checkpoint to continue (None when there is none)."""
    from fedseg.train import checkpoint as ckpt

    if not (ckpt_dir.exists() and (ckpt_dir / ckpt.STATE_FILE).exists()):
        return None
    if not resume:
        raise TrainingError(f"{ckpt_dir}: a checkpoint folder already exists; pass --resume to continue it, "
                            "or remove it to start over")
    meta, _ = ckpt.load_checkpoint(ckpt_dir)
    record = CheckpointRecord.from_meta(meta, ckpt_dir / ckpt.STATE_FILE)
    for name in ("plan_sha256", "parent_sha256", "site", "training", "total_steps"):
        theirs, ours = getattr(record, name), getattr(fresh, name)
        if theirs != ours:
            raise TrainingError(f"{ckpt_dir}: cannot resume: the checkpoint's {name} is {theirs!r}, "
                                f"this run's is {ours!r}")
    return record


def train_local(
    plan: Plan,
    global_path: Path,
    data_dir: Path,
    key: PrivateKey,
    out: Path,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    device: str = "auto",
    export: bool = True,
    resume: bool = False,
    state_path: Path | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int | None = None,
    progress: Callable[[Any], None] | None = None,
    val_dice_before: dict[str, float] | None = None,
    validate_after: bool = True,
) -> TrainResult:
    """Train the received global on this site's data; keep a checkpoint folder; export the update.

    Everything is checked before any training: the global (plan, signature, kind, expiry, model spec,
    site state: the next round only), the key (a site of the plan), the dataset (modalities and
    preprocessing of the plan, a non-empty labelled train split). ``progress`` receives
    :class:`~fedseg.train.loop.Phase` and :class:`~fedseg.train.loop.StepInfo` events. A failure leaves
    no update file; an interruption leaves the last checkpoint, from which ``resume=True`` continues.
    Validation scores in ``training.patch_size`` windows at ``training.val_overlap``
    (:func:`fedseg.train.validate.validate`), as ``fedseg evaluate`` does at the same overlap. A caller that
    already scored the received global on this site's val split (``fedseg simulate``) passes its
    ``val_dice_before`` instead of having it scored twice, and ``validate_after=False`` when nobody reads the
    local model's score (the simulation scores the aggregated global; the update then carries no
    ``val_dice_after``).
    """
    from fedseg.data.dataset import load_dataset
    from fedseg.device import resolve_device
    from fedseg.federation.state import SiteState, default_state_path
    from fedseg.model.spec import build_model, numpy_to_state, state_to_numpy
    from fedseg.train import checkpoint as ckpt
    from fedseg.train.loop import Phase, make_optimizer, round_window, train
    from fedseg.train.sampling import index_case
    from fedseg.train.validate import validate
    from fedseg.workflow.site.export import export_update

    out = Path(out)
    site_in_chain(plan, key)  # a key of no site in any version of the chain: say so before anything else
    art = read_global(plan, global_path)
    global_round = art.typed_manifest.round
    update_round = global_round + 1
    # The plan chain verified the global; the version in force for the update's round governs the rest.
    chain, plan = plan, plan.in_force(update_round)
    site = site_for_round(chain, key, update_round)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out.with_name(out.name + ".ckpt")
    state_file = Path(state_path) if state_path is not None else default_state_path(data_dir, plan.federation_id)
    dataset = load_dataset(data_dir)
    refuse_output_overlap(out, {"plan": plan.source, "global": global_path, "key": key.source, "site state": state_file,
                                "dataset file": dataset.root / "dataset.json"}, folders={"dataset": dataset.root / "cases"})
    check_dataset(dataset, plan)
    train_cases, val_cases = _labelled_splits(dataset)
    # Each round and site draws its own patch stream: the same seed every round would replay the same
    # patches in every round. Still a pure function of (plan seed, round, site), so reruns are identical.
    config = dataclasses.replace(plan.training, seed=round_seed(plan.training.seed, update_round, site.id))
    total = _total_steps(plan, len(train_cases), steps, epochs)
    if config.drift_correction is DriftCorrection.SCAFFOLD and total != config.steps_per_round:
        # every site's c_i and the c it derives are normalised by the same Σ η_k of steps_per_round steps
        raise TrainingError('training.drift_correction = "scaffold" needs every site to train the plan\'s '
                            f"training.steps_per_round = {config.steps_per_round} steps a round; "
                            f"--steps/--epochs cannot make it {total}")
    private, schedule = _private(plan, site, len(train_cases), total=total)
    dev = resolve_device(device)
    fresh = CheckpointRecord(
        round=update_round, site=site.id, federation_id=plan.federation_id, plan_sha256=plan.sha256,
        parent_sha256=art.digest, training=config_to_dict(config), model=config_to_dict(plan.model),
        total_steps=total, num_examples=min(len(train_cases), config.max_examples), seed=config.seed,
        val_cases=len(val_cases))
    record = _resumable(ckpt_dir, fresh, resume)
    state = SiteState(state_file)
    state.check_plan(chain)
    state.check_global(plan.federation_id, global_round, art.digest, plan=chain)
    if schedule is not None and record is None:  # a fresh run spends budget; a resumed one already has
        from fedseg.workflow.site.privacy_spent import privacy_file, spend

        fresh = dataclasses.replace(fresh, privacy=spend(privacy_file(state_file), schedule, round_=update_round,
                                                         parent_sha256=art.digest, site=site.id))
    state.accept_global(plan.federation_id, global_round, art.digest, plan=chain)

    def emit(event: Any) -> None:
        if progress is not None:
            progress(event)

    def run_validation(model: Any, phase: str) -> dict[str, float] | None:
        readers = [dataset.reader(c) for c in val_cases]
        emit(Phase(phase, 0, len(readers)))
        return validate(model, readers, patch_size=config.patch_size, overlap=config.val_overlap, device=str(dev),
                        amp=config.amp and dev.type == "cuda", on_case=lambda d, t: emit(Phase(phase, d, t)))

    global_weights = {name: np.asarray(arr, dtype=np.float32) for name, arr in art.tensors.items()}
    model = build_model(plan.model, global_weights)
    if record is None:
        before = val_dice_before if val_dice_before is not None else run_validation(model.to(dev), "validate-before")
        model.to("cpu")
        record = dataclasses.replace(fresh, val_dice_before=before)
        ckpt.write_tensors(ckpt_dir / ckpt.GLOBAL_FILE, global_weights)
        ckpt.save_checkpoint(ckpt_dir, record.to_meta(), global_weights, None)
    else:
        _, weights = ckpt.load_checkpoint(ckpt_dir)
        model.load_state_dict(numpy_to_state(weights, plan.model))
    if not record.complete:
        optimizer_state = None
        # A resumed round goes on from its own checkpoint's moments; a fresh one from the site's kept ones.
        kept = config.keep_optimizer_state and record.step == 0
        if record.optimizer_file or kept:
            groups = make_optimizer(model, config).state_dict()["param_groups"]
            optimizer_state = (ckpt.optimizer_from_h5(ckpt_dir / record.optimizer_file, groups) if record.optimizer_file
                               else kept_optimizer(optimizer_path(state_file, update_round - 1), update_round, plan,
                                                   groups))
        cases = [index_case(dataset.reader(c), np.random.default_rng([config.seed, i]))
                 for i, c in enumerate(train_cases)]
        every = checkpoint_every if checkpoint_every is not None else max(1, math.ceil(total / 10))
        started = record

        def save(step: int, m: Any, opt: Any, losses: list[float]) -> None:
            snapshot = dataclasses.replace(started, step=step, losses=tuple(losses))
            ckpt.save_checkpoint(ckpt_dir, snapshot.to_meta(), state_to_numpy(m.state_dict()), opt.state_dict())

        anchor = numpy_to_state(global_weights, plan.model) if config.fedprox_mu > 0 else None
        window = round_window(config, update_round, plan.rounds)
        scaffold = config.drift_correction is DriftCorrection.SCAFFOLD
        names = [n for n, _ in model.named_parameters()]
        drift = (kept_drift(drift_path(state_file, update_round - 1), update_round, plan, global_weights, names)
                 if scaffold else None)
        outcome = train(model, cases, config, total_steps=total, device=dev, start_step=record.step,
                        optimizer_state=optimizer_state, losses=list(record.losses), global_weights=anchor,
                        checkpoint_every=every, on_checkpoint=save, progress=emit, private=private,
                        schedule_window=window, drift=drift.correction() if drift is not None else None)
        if scaffold:
            trained = {n: p.detach().cpu().numpy() for n, p in model.named_parameters()}
            keep_drift(drift_path(state_file, update_round), update_round, plan, start=global_weights,
                       trained=trained, total=lr_sum(config, total, window), used=drift)
        if config.keep_optimizer_state and outcome.optimizer_state is not None:  # a file per round: see prune
            ckpt.write_optimizer(optimizer_path(state_file, update_round), outcome.optimizer_state,
                                 attrs={"round": str(update_round), "fits_sha256": optimizer_fit(plan)})
        after = run_validation(model.to(dev), "validate-after") if validate_after else None
        model.to("cpu")
        record = dataclasses.replace(record, step=total, complete=True, losses=tuple(outcome.losses),
                                     val_dice_after=after, seconds=record.seconds + outcome.seconds,
                                     data_wait_share=outcome.data_wait_seconds / max(outcome.seconds, 1e-9))
        ckpt.save_checkpoint(ckpt_dir, record.to_meta(), state_to_numpy(model.state_dict()), None)
    prune_kept(state_file, update_round)
    update_path = None
    if export:
        emit(Phase("export", 0, 1))
        update_path = export_update(ckpt_dir, plan, key, out)
        emit(Phase("export", 1, 1))
    loss = record.train_loss
    return TrainResult(
        checkpoint_dir=ckpt_dir, update_path=update_path, round=record.round, site=site.id, steps=total,
        num_examples=record.num_examples, train_loss=loss if loss is not None else float("nan"),
        val_dice_before=_dice(record.val_dice_before), val_dice_after=_dice(record.val_dice_after),
        seconds=record.seconds, data_wait_share=record.data_wait_share or 0.0, state_path=state_file,
        privacy=dict(record.privacy) if record.privacy is not None else None,
    )


def _private(plan: Plan, site: Any, n_train: int, *, total: int) -> tuple[Any, Any]:
    """Return the DP-SGD mechanism and its schedule (None, None outside dp-sgd)."""
    from fedseg.privacy import PrivacyMode, site_schedule
    from fedseg.train.dp_sgd import DPSGD

    if plan.privacy.mode is not PrivacyMode.DP_SGD:
        return None, None
    if total != plan.training.steps_per_round:
        raise TrainingError("privacy.mode dp-sgd: the privacy budget was planned for training.steps_per_round "
                            f"= {plan.training.steps_per_round} steps a round; --steps/--epochs cannot make it {total}")
    schedule = site_schedule(plan.privacy, enrolled_cases=site.cases, train_cases=n_train,
                             batch_size=plan.training.batch_size, steps_per_round=plan.training.steps_per_round,
                             rounds=plan.rounds, site=site.id)
    log.info("site %s: DP-SGD noise multiplier %.4f, clip %g, sampling rate %.4f", site.id,
             schedule.noise_multiplier, schedule.clip, schedule.sampling_rate)
    return DPSGD(schedule.noise_multiplier, schedule.clip, schedule.sampling_rate), schedule


def _dice(scores: Any) -> dict[str, float] | None:
    return dict(scores) if scores is not None else None

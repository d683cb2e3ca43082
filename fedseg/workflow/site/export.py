"""Sign a finished checkpoint as a site update artifact (``fedseg export CHECKPOINT``, end of train-local)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configtools import config_to_dict
from fedseg.errors import BindingError, PlanError, TrainingError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.manifest import DType, WeightsKind, update_manifest
from fedseg.federation.plan import Plan
from fedseg.fsutil import refuse_output_overlap
from fedseg.workflow.site.received import site_of_key
from fedseg.workflow.site.record import CheckpointRecord

__all__ = ["export_update", "site_metrics"]

log = logging.getLogger(__name__)


def site_metrics(record: CheckpointRecord, min_cases: int) -> dict[str, Any]:
    """Return the site-level metrics an update may carry: only figures computed over >= ``min_cases`` cases.

    A validation Dice over one or two cases is one or two patients' numbers, not a site's; so is a training
    loss over fewer cases. Under DP-SGD (the record carries ``privacy``) the training loss stays at the
    site too: it is computed from the protected training cases without noise, outside the accounting.
    What is left out is logged here, at the site, and never leaves it.
    """
    metrics: dict[str, Any] = {"steps": record.step}
    val = record.val_cases or 0
    if val >= min_cases:
        metrics.update(val_dice_before=record.val_dice_before, val_dice_after=record.val_dice_after, val_cases=val)
    else:
        log.info("validation Dice stays at the site: %d validation case(s), fewer than training.metrics_min_cases "
                 "= %d", val, min_cases)
    if record.privacy is not None:
        log.info("training loss stays at the site: it is not differentially private")
    elif record.num_examples >= min_cases:
        metrics["train_loss"] = record.train_loss
    else:
        log.info("training loss stays at the site: %d training case(s), fewer than training.metrics_min_cases = %d",
                 record.num_examples, min_cases)
    return metrics


def export_update(checkpoint_dir: Path, plan: Plan, key: PrivateKey, out: Path, *,
                  dtype: DType | str = DType.FLOAT32, weights: WeightsKind | str = WeightsKind.FULL) -> Path:
    """Sign the finished checkpoint in ``checkpoint_dir`` as an update artifact at ``out``; return ``out``.

    ``weights="delta"`` exports local minus global weights; ``dtype="float16"`` halves the size. The
    manifest carries round, parent digest, number of training cases, before/after validation Dice (site
    means), the final training loss, steps, the training and model configs, and under DP-SGD the privacy
    accounting (ε spent so far, δ, noise, clip, sampling rate, steps, accountant). The written file is read
    back and verified against the plan before this returns.
    """
    from fedseg.federation.artifact import Kind, read_artifact, write_artifact
    from fedseg.model.spec import model_tensor_spec
    from fedseg.train import checkpoint as ckpt

    try:
        dtype = DType(dtype)
    except ValueError:
        raise TrainingError(f"dtype must be float32 or float16, got {dtype!r}") from None
    try:
        weights = WeightsKind(weights)
    except ValueError:
        raise TrainingError(f"weights must be full or delta, got {weights!r}") from None
    checkpoint_dir = Path(checkpoint_dir)
    own = {f"checkpoint file {f.name}": f for f in checkpoint_dir.glob("*") if f.is_file()}
    refuse_output_overlap(out, {"plan": plan.source, "key": key.source, **own})
    meta, local = ckpt.load_checkpoint(checkpoint_dir)
    record = CheckpointRecord.from_meta(meta, checkpoint_dir / ckpt.STATE_FILE)
    plan = plan.in_force(record.round)  # the plan version that governs the update's round
    if not record.complete:
        raise TrainingError(f"{checkpoint_dir}: training stopped at step {record.step} of "
                            f"{record.total_steps}; finish it with `fedseg train-local --resume` first")
    if record.plan_sha256 != plan.sha256:
        raise BindingError(f"{checkpoint_dir}: the checkpoint was trained under plan {record.plan_sha256}, "
                           f"not this plan ({plan.sha256})")
    site = site_of_key(plan, key)
    if site.id != record.site:
        raise PlanError(f"{key.source}: this checkpoint was trained by site {record.site!r}; "
                        f"the key given is site {site.id!r}'s")
    spec = model_tensor_spec(plan.model)
    if set(local) != set(spec):
        raise TrainingError(f"{checkpoint_dir}: the checkpoint weights do not match the plan's model")
    tensors = local
    if weights is WeightsKind.DELTA:
        parent, _ = ckpt.read_tensors(checkpoint_dir / ckpt.GLOBAL_FILE)
        tensors = {name: local[name].astype(np.float32) - parent[name].astype(np.float32) for name in local}
    tensors = {name: np.ascontiguousarray(arr, dtype=np.dtype(dtype.value)) for name, arr in tensors.items()}
    if not all(np.isfinite(arr).all() for arr in tensors.values()):
        raise TrainingError(f"{checkpoint_dir}: weights are not finite in {dtype.value}; export float32 instead")
    manifest = update_manifest(
        round_=record.round, signer=site.id, parent_sha256=record.parent_sha256, weights=weights,
        num_examples=record.num_examples, training=record.training, model=config_to_dict(plan.model),
        metrics=site_metrics(record, plan.training.metrics_min_cases),
        created=datetime.now(timezone.utc), privacy=record.privacy)
    out = Path(out)
    write_artifact(out, manifest=manifest, tensors=tensors, key=key, plan=plan)
    try:
        read_artifact(out, plan, kind=Kind.UPDATE, spec=spec, load_tensors=False)
    except Exception:
        out.unlink(missing_ok=True)  # never leave an update that does not verify
        raise
    return out

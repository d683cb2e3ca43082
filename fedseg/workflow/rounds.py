"""A round seen from one site: the round-0 global, local training, and the signed update.

* :func:`write_initial_global` — the coordinator's signed ``global-r0000.fedseg`` (seeded weights).
* :func:`train_local` — verify the received global (plan, signature, kind, expiry, site state: only the
  next round), check the key and the dataset against the plan, validate the global, train, validate the
  result, keep a checkpoint folder and (unless ``export=False``) export the update.
* :func:`export_update` — sign a finished checkpoint as an update artifact.

Conventions chosen here:

* The update of a global of round ``r`` is for round ``r + 1`` (``site-a-r0001.fedseg`` answers
  ``global-r0000.fedseg``); its ``parent_sha256`` is the global's payload digest.
* ``num_examples`` is the number of training cases (capped at ``training.max_examples``), not patches:
  every site draws the same number of patches per step, so cases are what measures a site's data.
* One epoch is ``ceil(train cases / batch size)`` steps (each case seen once on average).
* The checkpoint folder defaults to ``<out>.ckpt/``; the site state (last accepted global round per
  federation) defaults to ``.fedseg-site-state.json`` in the folder holding the checkpoint folder, i.e.
  beside the update files; ``state_path`` overrides it.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configtools import config_from_mapping, config_to_dict
from fedseg.errors import BindingError, DatasetError, PlanError, TrainingError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Member, Plan
from fedseg.fsutil import refuse_output_overlap
from fedseg.imaging.config import PreprocessConfig

__all__ = ["TrainResult", "export_global", "export_update", "global_filename", "train_local", "write_initial_global"]

log = logging.getLogger(__name__)

STATE_FILENAME = ".fedseg-site-state.json"


def global_filename(round_: int) -> str:
    """Return the conventional file name of the global model of ``round_``."""
    return f"global-r{round_:04d}.fedseg"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def write_initial_global(plan: Plan, key: PrivateKey, out_dir: Path, *, seed: int = 0) -> Path:
    """Write the signed round-0 global ``OUT_DIR/global-r0000.fedseg`` with weights seeded by ``seed``."""
    from fedseg.federation.artifact import Kind, write_artifact
    from fedseg.model.spec import initial_weights

    if key.key_id != plan.coordinator.key_id:
        raise PlanError(f"{key.source}: the round-0 global must be signed by the coordinator "
                        f"{plan.coordinator.id!r} (key id {plan.coordinator.key_id}), got key id {key.key_id}")
    refuse_output_overlap(Path(out_dir) / global_filename(0), {"coordinator key": key.source, "plan": plan.source})
    created = _now()
    manifest = {
        "kind": Kind.GLOBAL.value,
        "round": 0,
        "signer": plan.coordinator.id,
        "parent_sha256": None,
        "weights": "full",
        "model": config_to_dict(plan.model),
        "strategy": None,
        "contributors": [],
        "metrics": {},
        "seed": seed,
        "created_at": _iso(created),
        "expires_at": _iso(created + timedelta(days=plan.aggregation.global_expiry_days)),
    }
    path = Path(out_dir) / global_filename(0)
    write_artifact(path, manifest=manifest, tensors=initial_weights(plan.model, seed), key=key, plan=plan)
    return path


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


def site_of_key(plan: Plan, key: PrivateKey) -> Member:
    """Return the site member holding ``key``; PlanError when the key is not a site of the plan."""
    member = plan.member_by_key_id(key.key_id)
    if member is None or member not in plan.sites:
        who = "the coordinator's" if member is not None else "not a member's"
        raise PlanError(f"{key.source}: key id {key.key_id} is {who} key, expected the key of one of the sites "
                        f"{', '.join(s.id for s in plan.sites)} of federation {plan.name!r}")
    return member


def _check_dataset(dataset: Any, plan: Plan) -> None:
    where = f"{dataset.root / 'dataset.json'}"
    if tuple(dataset.modalities) != tuple(plan.preprocessing.modalities):
        raise DatasetError(f"{where}: modalities {list(dataset.modalities)} differ from the plan's "
                           f"{list(plan.preprocessing.modalities)}")
    try:
        theirs = config_from_mapping(PreprocessConfig, dataset.preprocessing, "preprocessing")
    except Exception as exc:  # ConfigError: the dataset's settings do not even parse
        raise DatasetError(f"{where}: cannot read its preprocessing settings ({exc})") from None
    if theirs != plan.preprocessing:
        ours, other = config_to_dict(plan.preprocessing), config_to_dict(theirs)
        diff = ", ".join(f"{k}={other[k]!r} (plan: {ours[k]!r})" for k in ours if ours[k] != other[k])
        raise DatasetError(f"{where}: preprocessed with other settings than the plan's: {diff}; "
                           "run `fedseg preprocess` with this plan")


def read_global(plan: Plan, global_path: Path) -> Any:
    """Read and verify a global artifact against ``plan`` (signature, kind, model spec, expiry)."""
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.model.spec import model_tensor_spec

    art = read_artifact(Path(global_path), plan, kind=Kind.GLOBAL, spec=model_tensor_spec(plan.model))
    expires = art.manifest.get("expires_at")
    try:
        expiry = datetime.fromisoformat(str(expires).replace("Z", "+00:00")) if expires is not None else None
    except ValueError:
        raise BindingError(f"{global_path}: expires_at {expires!r} is not an ISO 8601 time") from None
    if expiry is not None and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=timezone.utc)
    if expiry is not None and expiry < _now():
        raise BindingError(f"{global_path}: this global model expired at {expires}; ask the coordinator for a "
                           "current one")
    if art.manifest.get("weights", "full") != "full":
        raise BindingError(f"{global_path}: expected full weights in a global model, got {art.manifest['weights']!r}")
    return art


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
) -> TrainResult:
    """Train the received global on this site's data; keep a checkpoint folder; export the update.

    Everything is checked before any training: the global (plan, signature, kind, expiry, model spec,
    site state: the next round only), the key (a site of the plan), the dataset (modalities and
    preprocessing of the plan, a non-empty labelled train split). ``progress`` receives
    :class:`~fedseg.train.loop.Phase` and :class:`~fedseg.train.loop.StepInfo` events. A failure leaves
    no update file; an interruption leaves the last checkpoint, from which ``resume=True`` continues.
    """
    from fedseg.data.dataset import load_dataset
    from fedseg.federation.state import SiteState
    from fedseg.model.spec import build_model, numpy_to_state, state_to_numpy
    from fedseg.train import checkpoint as ckpt
    from fedseg.train.loop import Phase, make_optimizer, resolve_device, train
    from fedseg.train.sampling import index_case
    from fedseg.train.validate import validate

    out = Path(out)
    site = site_of_key(plan, key)
    art = read_global(plan, global_path)
    global_round = int(art.manifest["round"])
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out.with_name(out.name + ".ckpt")
    state_file = Path(state_path) if state_path is not None else ckpt_dir.parent / STATE_FILENAME
    dataset = load_dataset(data_dir)
    refuse_output_overlap(out, {"plan": plan.source, "global": global_path, "key": key.source, "site state": state_file,
                                "dataset file": dataset.root / "dataset.json"}, folders={"dataset": dataset.root / "cases"})
    _check_dataset(dataset, plan)
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
    # Each round and site draws its own patch stream: the same seed every round would replay the same
    # patches in every round. Still a pure function of (plan seed, round, site), so reruns are identical.
    config = replace(plan.training, seed=round_seed(plan.training.seed, global_round + 1, site.id))
    total = _total_steps(plan, len(train_cases), steps, epochs)
    dev = resolve_device(device)
    meta: dict[str, Any] | None = None
    if ckpt_dir.exists() and (ckpt_dir / ckpt.STATE_FILE).exists():
        if not resume:
            raise TrainingError(f"{ckpt_dir}: a checkpoint folder already exists; pass --resume to continue it, "
                                "or remove it to start over")
        meta, _ = ckpt.load_checkpoint(ckpt_dir)
        expected = {"plan_sha256": plan.sha256, "parent_sha256": art.digest, "site": site.id,
                    "training": config_to_dict(config), "total_steps": total}
        for name, value in expected.items():
            if meta.get(name) != value:
                raise TrainingError(f"{ckpt_dir}: cannot resume: the checkpoint's {name} is {meta.get(name)!r}, "
                                    f"this run's is {value!r}")
    state = SiteState(state_file)
    state.check_global(plan.federation_id, global_round, art.digest)
    state.accept_global(plan.federation_id, global_round, art.digest)

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
    base_meta = {
        "round": global_round + 1, "site": site.id, "federation_id": plan.federation_id, "plan_sha256": plan.sha256,
        "parent_sha256": art.digest, "training": config_to_dict(config), "model": config_to_dict(plan.model),
        "total_steps": total, "num_examples": min(len(train_cases), config.max_examples),
        "rng": {"scheme": "numpy default_rng([seed, step]) per batch", "seed": config.seed},
    }
    if meta is None:
        before = run_validation(model.to(dev), "validate-before")
        model.to("cpu")
        meta = dict(base_meta, step=0, complete=False, losses=[], seconds=0.0,
                    metrics={"val_dice_before": before, "val_dice_after": None})
        ckpt.write_tensors(ckpt_dir / ckpt.GLOBAL_FILE, global_weights)
        ckpt.save_checkpoint(ckpt_dir, meta, global_weights, None)
    else:
        _, weights = ckpt.load_checkpoint(ckpt_dir)
        model.load_state_dict(numpy_to_state(weights, plan.model))
    outcome = None
    if not meta["complete"]:
        optimizer_state = None
        if meta.get("optimizer"):
            groups = make_optimizer(model, config).state_dict()["param_groups"]
            optimizer_state = ckpt.optimizer_from_h5(ckpt_dir / meta["optimizer"], groups)
        cases = [index_case(dataset.reader(c), np.random.default_rng([config.seed, i]))
                 for i, c in enumerate(train_cases)]
        every = checkpoint_every if checkpoint_every is not None else max(1, math.ceil(total / 10))
        done_meta = meta

        def save(step: int, m: Any, opt: Any, losses: list[float]) -> None:
            ckpt.save_checkpoint(ckpt_dir, dict(done_meta, step=step, losses=list(losses)),
                                 state_to_numpy(m.state_dict()), opt.state_dict())

        anchor = numpy_to_state(global_weights, plan.model) if config.fedprox_mu > 0 else None
        outcome = train(model, cases, config, total_steps=total, device=dev, start_step=int(meta["step"]),
                        optimizer_state=optimizer_state, losses=meta.get("losses", []), global_weights=anchor,
                        checkpoint_every=every, on_checkpoint=save, progress=emit)
        after = run_validation(model.to(dev), "validate-after")
        model.to("cpu")
        metrics = dict(meta["metrics"], val_dice_after=after)
        meta = dict(meta, step=total, complete=True, losses=outcome.losses, metrics=metrics,
                    seconds=float(meta.get("seconds", 0.0)) + outcome.seconds,
                    data_wait_share=outcome.data_wait_seconds / max(outcome.seconds, 1e-9))
        ckpt.save_checkpoint(ckpt_dir, meta, state_to_numpy(model.state_dict()), None)
    update_path = None
    if export:
        emit(Phase("export", 0, 1))
        update_path = export_update(ckpt_dir, plan, key, out)
        emit(Phase("export", 1, 1))
    losses = meta["losses"]
    tail = losses[-max(1, len(losses) // 10):]
    return TrainResult(
        checkpoint_dir=ckpt_dir, update_path=update_path, round=int(meta["round"]), site=site.id, steps=total,
        num_examples=int(meta["num_examples"]), train_loss=float(np.mean(tail)) if tail else float("nan"),
        val_dice_before=meta["metrics"]["val_dice_before"], val_dice_after=meta["metrics"]["val_dice_after"],
        seconds=float(meta.get("seconds", 0.0)), data_wait_share=float(meta.get("data_wait_share", 0.0)),
        state_path=state_file,
    )


def export_update(checkpoint_dir: Path, plan: Plan, key: PrivateKey, out: Path, *, dtype: str = "float32",
                  weights: str = "full") -> Path:
    """Sign the finished checkpoint in ``checkpoint_dir`` as an update artifact at ``out``; return ``out``.

    ``weights="delta"`` exports local minus global weights; ``dtype="float16"`` halves the size. The
    manifest carries round, parent digest, number of training cases, before/after validation Dice (site
    means), the final training loss, steps, and the training and model configs. The written file is read
    back and verified against the plan before this returns.
    """
    from fedseg.federation.artifact import Kind, read_artifact, write_artifact
    from fedseg.model.spec import model_tensor_spec
    from fedseg.train import checkpoint as ckpt

    if dtype not in ("float32", "float16"):
        raise TrainingError(f"dtype must be float32 or float16, got {dtype!r}")
    if weights not in ("full", "delta"):
        raise TrainingError(f"weights must be full or delta, got {weights!r}")
    checkpoint_dir = Path(checkpoint_dir)
    own = {f"checkpoint file {f.name}": f for f in checkpoint_dir.glob("*") if f.is_file()}
    refuse_output_overlap(out, {"plan": plan.source, "key": key.source, **own})
    meta, local = ckpt.load_checkpoint(checkpoint_dir)
    if not meta.get("complete"):
        raise TrainingError(f"{checkpoint_dir}: training stopped at step {meta.get('step')} of "
                            f"{meta.get('total_steps')}; finish it with `fedseg train-local --resume` first")
    if meta.get("plan_sha256") != plan.sha256:
        raise BindingError(f"{checkpoint_dir}: the checkpoint was trained under plan {meta.get('plan_sha256')}, "
                           f"not this plan ({plan.sha256})")
    site = site_of_key(plan, key)
    if site.id != meta.get("site"):
        raise PlanError(f"{key.source}: this checkpoint was trained by site {meta.get('site')!r}; "
                        f"the key given is site {site.id!r}'s")
    spec = model_tensor_spec(plan.model)
    if set(local) != set(spec):
        raise TrainingError(f"{checkpoint_dir}: the checkpoint weights do not match the plan's model")
    tensors = local
    if weights == "delta":
        parent, _ = ckpt.read_tensors(checkpoint_dir / ckpt.GLOBAL_FILE)
        tensors = {name: local[name].astype(np.float32) - parent[name].astype(np.float32) for name in local}
    tensors = {name: np.ascontiguousarray(arr, dtype=np.dtype(dtype)) for name, arr in tensors.items()}
    if not all(np.isfinite(arr).all() for arr in tensors.values()):
        raise TrainingError(f"{checkpoint_dir}: weights are not finite in {dtype}; export float32 instead")
    losses = meta.get("losses", [])
    tail = losses[-max(1, len(losses) // 10):]
    manifest = {
        "kind": Kind.UPDATE.value,
        "round": int(meta["round"]),
        "signer": site.id,
        "parent_sha256": meta["parent_sha256"],
        "weights": weights,
        "num_examples": int(meta["num_examples"]),
        "metrics": {
            "val_dice_before": meta["metrics"]["val_dice_before"],
            "val_dice_after": meta["metrics"]["val_dice_after"],
            "train_loss": float(np.mean(tail)) if tail else None,
            "steps": int(meta["step"]),
        },
        "training": meta["training"],
        "model": config_to_dict(plan.model),
        "created_at": _iso(_now()),
    }
    out = Path(out)
    write_artifact(out, manifest=manifest, tensors=tensors, key=key, plan=plan)
    try:
        read_artifact(out, plan, kind=Kind.UPDATE, spec=model_tensor_spec(plan.model), load_tensors=False)
    except Exception:
        out.unlink(missing_ok=True)  # never leave an update that does not verify
        raise
    return out


def export_global(global_path: Path, plan: Plan, out: Path, *, format: str = "safetensors") -> Path:
    """Write a verified global model as safetensors or TorchScript (see :mod:`fedseg.workflow.model_export`)."""
    from fedseg.workflow.model_export import export_global as _export

    return _export(global_path, plan, out, format=format)

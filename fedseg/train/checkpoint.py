"""The local checkpoint folder: everything needed to resume training or export an update, never pickled.

Layout of ``<out>.ckpt/``::

    checkpoint.json          step, total steps, complete flag, round, parent digest, configs, losses,
                             validation metrics, RNG scheme, and the names of the two files below
    weights-<step>.h5        model tensors (float32 HDF5 datasets named like the state dict)
    optimizer-<step>.h5      optimizer state tensors (``state/<param index>/<name>``) + scalars as JSON attribute
    global.h5                the received global weights (FedProx anchor, delta export)

Every file is written atomically, the tensor files before the JSON that names them, and stale tensor
files are removed only after the JSON points elsewhere: a crash leaves the previous complete checkpoint.
Randomness needs no stored generator state: batches and augmentation are drawn from generators seeded
with ``(seed, step)`` (see :mod:`fedseg.train.sampling`), recorded as ``rng``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import TrainingError
from fedseg.fsutil import atomic_path, atomic_write_json

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "optimizer_from_h5", "read_optimizer", "read_tensors",
           "save_checkpoint", "write_optimizer", "write_tensors"]

CHECKPOINT_FORMAT = "fedseg-checkpoint/1"
STATE_FILE = "checkpoint.json"
GLOBAL_FILE = "global.h5"


def write_tensors(path: Path, tensors: Mapping[str, np.ndarray], *, attrs: Mapping[str, str] | None = None) -> None:
    """Write named arrays as datasets of one HDF5 file, atomically."""
    import h5py

    with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as f:
        for name, arr in tensors.items():
            f.create_dataset(name, data=np.asarray(arr))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value


def read_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read every dataset (recursively, ``a/b`` names) and the string attributes of a local HDF5 file."""
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(Path(path), "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    out[name] = np.asarray(obj[()])

            f.visititems(visit)
            attrs = {k: str(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise TrainingError(f"{path}: cannot read the checkpoint tensors ({exc})") from None
    return out, attrs


def _optimizer_to_h5(state: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    tensors: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if hasattr(value, "detach"):
                tensors[f"state/{index}/{key}"] = value.detach().cpu().numpy()
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, scalars


def write_optimizer(path: Path, state: Mapping[str, Any], *, attrs: Mapping[str, str] | None = None) -> None:
    """Write a torch optimizer state dict's tensors and scalars (not its param groups) to ``path``, atomically."""
    tensors, scalars = _optimizer_to_h5(state)
    write_tensors(path, tensors, attrs={**(attrs or {}), "scalars": json.dumps(scalars)})


def optimizer_from_h5(path: Path, param_groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a torch optimizer state dict from ``path`` with the given (freshly built) ``param_groups``."""
    return read_optimizer(path, param_groups)[0]


def read_optimizer(path: Path, param_groups: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (the optimizer state dict, the file's string attributes) from one read of ``path``."""
    import torch

    tensors, attrs = read_tensors(path)
    state: dict[int, dict[str, Any]] = {}
    for name, arr in tensors.items():
        _, index, key = name.split("/", 2)
        state.setdefault(int(index), {})[key] = torch.from_numpy(arr)
    for name, value in json.loads(attrs.get("scalars", "{}")).items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": param_groups}, attrs


def save_checkpoint(directory: Path, meta: dict[str, Any], weights: Mapping[str, np.ndarray],
                    optimizer_state: Mapping[str, Any] | None) -> None:
    """Write a checkpoint at ``meta["step"]``: tensor files first, then ``checkpoint.json``, then clean up."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = int(meta["step"])
    weights_name = f"weights-{step:07d}.h5"
    write_tensors(directory / weights_name, weights)
    body = dict(meta, format=CHECKPOINT_FORMAT, weights=weights_name, optimizer=None)
    if optimizer_state is not None:
        optimizer_name = f"optimizer-{step:07d}.h5"
        write_optimizer(directory / optimizer_name, optimizer_state)
        body["optimizer"] = optimizer_name
    atomic_write_json(directory / STATE_FILE, body)
    keep = {weights_name, body["optimizer"]}
    for pattern in ("weights-*.h5", "optimizer-*.h5"):
        for old in directory.glob(pattern):
            if old.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()


def load_checkpoint(directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (metadata, model weights) of the checkpoint folder; TrainingError when absent or broken."""
    directory = Path(directory)
    path = directory / STATE_FILE
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise TrainingError(f"{directory}: not a checkpoint folder (no {STATE_FILE}); "
                            "was it written by `fedseg train-local`?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(f"{path}: cannot parse the checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: expected format {CHECKPOINT_FORMAT!r}, got {meta.get('format')!r}")
    weights, _ = read_tensors(directory / str(meta["weights"]))
    return meta, weights

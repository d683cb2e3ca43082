"""The checkpoint record: what ``checkpoint.json`` of a site's checkpoint folder says about the round.

:mod:`fedseg.train.checkpoint` stores the record beside the tensor files (it adds ``format``,
``weights`` and ``optimizer``, the names of those files); this module gives it a type. The JSON keys
are the ones fedseg has always written (``metrics.val_dice_before``/``val_dice_after``, ``rng.scheme``/
``rng.seed``; ``data_wait_share`` only once training is complete; ``privacy``, the DP-SGD accounting
after this round, only under ``[privacy] mode = "dp-sgd"``), so older checkpoint folders resume and export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import TrainingError

__all__ = ["RNG_SCHEME", "CheckpointRecord"]

RNG_SCHEME = "numpy default_rng([seed, step]) per batch"


@dataclass(frozen=True)
class CheckpointRecord:
    """One site's training of one round: ``round`` is the update's round (the global's round + 1)."""

    round: int
    site: str
    federation_id: str
    plan_sha256: str
    parent_sha256: str
    training: Mapping[str, Any]
    model: Mapping[str, Any]
    total_steps: int
    num_examples: int
    seed: int
    step: int = 0
    complete: bool = False
    losses: tuple[float, ...] = ()
    seconds: float = 0.0
    val_dice_before: Mapping[str, float] | None = None
    val_dice_after: Mapping[str, float] | None = None
    data_wait_share: float | None = None
    val_cases: int | None = None
    privacy: Mapping[str, Any] | None = None
    optimizer_file: str | None = field(default=None, compare=False)

    @property
    def train_loss(self) -> float | None:
        """Return the mean loss of the last tenth of the steps (None before any step)."""
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return float(np.mean(tail)) if tail else None

    def to_meta(self) -> dict[str, Any]:
        """Return the JSON object :func:`fedseg.train.checkpoint.save_checkpoint` writes."""
        meta: dict[str, Any] = {
            "round": self.round, "site": self.site, "federation_id": self.federation_id,
            "plan_sha256": self.plan_sha256, "parent_sha256": self.parent_sha256, "training": dict(self.training),
            "model": dict(self.model), "total_steps": self.total_steps, "num_examples": self.num_examples,
            "rng": {"scheme": RNG_SCHEME, "seed": self.seed}, "step": self.step, "complete": self.complete,
            "losses": list(self.losses), "seconds": self.seconds,
            "metrics": {"val_dice_before": self.val_dice_before, "val_dice_after": self.val_dice_after},
        }
        if self.data_wait_share is not None:
            meta["data_wait_share"] = self.data_wait_share
        if self.val_cases is not None:
            meta["metrics"]["val_cases"] = self.val_cases
        if self.privacy is not None:
            meta["privacy"] = dict(self.privacy)
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], where: Path) -> CheckpointRecord:
        """Parse ``checkpoint.json``; TrainingError naming ``where`` and the field when it does not fit."""
        try:
            metrics, rng = meta.get("metrics") or {}, meta.get("rng") or {}
            optimizer = meta.get("optimizer")
            return cls(
                round=_int(meta["round"]), site=str(meta["site"]), federation_id=str(meta["federation_id"]),
                plan_sha256=str(meta["plan_sha256"]), parent_sha256=str(meta["parent_sha256"]),
                training=dict(meta["training"]), model=dict(meta["model"]), total_steps=_int(meta["total_steps"]),
                num_examples=_int(meta["num_examples"]), seed=_int(rng["seed"]), step=_int(meta["step"]),
                complete=bool(meta["complete"]), losses=tuple(float(x) for x in meta.get("losses", [])),
                seconds=float(meta.get("seconds", 0.0)), val_dice_before=metrics.get("val_dice_before"),
                val_dice_after=metrics.get("val_dice_after"),
                val_cases=_int(metrics["val_cases"]) if "val_cases" in metrics else None,
                data_wait_share=float(meta["data_wait_share"]) if "data_wait_share" in meta else None,
                optimizer_file=str(optimizer) if optimizer else None,
                privacy=dict(meta["privacy"]) if meta.get("privacy") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"{where}: the checkpoint record is incomplete or malformed ({exc!r}); "
                                "was it written by `fedseg train-local`?") from None


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value

"""Voxel-overlap metrics of two binary masks: Dice, sensitivity, specificity, volume.

Dice = 2 |P & R| / (|P| + |R|) (Dice, "Measures of the amount of ecologic association between
species", Ecology 1945). Sensitivity = TP / (TP + FN), specificity = TN / (TN + FP), both counted
over the whole image. Any non-zero voxel counts as foreground (as ``medpy.metric.binary.dc``).
Empty masks follow :class:`~fedseg.metrics.empty.EmptyPolicy`; see that module for the rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedseg.errors import MetricsError
from fedseg.metrics.empty import EmptyPolicy

__all__ = ["Confusion", "confusion", "dice", "dice_from", "ratio_from", "sensitivity", "specificity", "volume_ml"]


@dataclass(frozen=True)
class Confusion:
    """Voxel counts of a prediction against a reference over an image of ``total`` voxels."""

    tp: int
    fp: int
    fn: int
    total: int

    @property
    def tn(self) -> int:
        return self.total - self.tp - self.fp - self.fn

    @property
    def pred(self) -> int:
        return self.tp + self.fp

    @property
    def ref(self) -> int:
        return self.tp + self.fn


def confusion(pred: np.ndarray, ref: np.ndarray, *, total: int | None = None) -> Confusion:
    """Count TP, FP and FN of two same-shaped masks; ``total`` overrides the voxel count (for crops)."""
    p, r = _as_masks(pred, ref)
    tp = int(np.count_nonzero(p & r))
    return Confusion(
        tp=tp,
        fp=int(np.count_nonzero(p)) - tp,
        fn=int(np.count_nonzero(r)) - tp,
        total=int(p.size if total is None else total),
    )


def dice(pred: np.ndarray, ref: np.ndarray, *, empty: EmptyPolicy = EmptyPolicy.BRATS) -> float:
    """Return the Dice coefficient of two masks (1 / NaN when both are empty, by ``empty``)."""
    return dice_from(confusion(pred, ref), empty)


def sensitivity(pred: np.ndarray, ref: np.ndarray, *, empty: EmptyPolicy = EmptyPolicy.BRATS) -> float:
    """Return TP / (TP + FN) (1 / NaN when the reference is empty, by ``empty``)."""
    c = confusion(pred, ref)
    return ratio_from(c.tp, c.ref, empty)


def specificity(pred: np.ndarray, ref: np.ndarray, *, empty: EmptyPolicy = EmptyPolicy.BRATS) -> float:
    """Return TN / (TN + FP) over the whole image (1 / NaN when there is no background, by ``empty``)."""
    c = confusion(pred, ref)
    return ratio_from(c.tn, c.tn + c.fp, empty)


def volume_ml(voxels: int, spacing: Sequence[float]) -> float:
    """Return the volume of ``voxels`` voxels of size ``prod(spacing)`` mm^3 in millilitres."""
    return float(voxels) * math.prod(float(s) for s in spacing) / 1000.0


def dice_from(c: Confusion, empty: EmptyPolicy) -> float:
    """Return Dice from confusion counts; both empty -> 1 (brats) or NaN (nan), one empty -> 0."""
    denom = c.pred + c.ref
    if denom == 0:
        return 1.0 if EmptyPolicy(empty) is EmptyPolicy.BRATS else math.nan
    return 2.0 * c.tp / denom


def ratio_from(num: int, denom: int, empty: EmptyPolicy) -> float:
    """Return num / denom; a 0/0 ratio is 1 (``brats``) or NaN (``nan``)."""
    if denom == 0:
        return 1.0 if EmptyPolicy(empty) is EmptyPolicy.BRATS else math.nan
    return num / denom


def _as_masks(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise MetricsError(f"prediction and reference masks must have one shape, found {p.shape} and {r.shape}")
    return p.astype(bool, copy=False), r.astype(bool, copy=False)

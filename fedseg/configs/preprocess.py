"""Preprocessing settings (the plan's ``[preprocessing]`` table, stored in every site dataset)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fedseg.configtools import require
from fedseg.labels import MODALITIES

__all__ = ["PreprocessConfig", "SkullStrip"]


class SkullStrip(str, enum.Enum):
    AUTO = "auto"
    NONE = "none"
    CLASSIC = "classic"
    DEEPBET = "deepbet"
    HD_BET = "hd-bet"


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw scans become a site dataset: target ``spacing`` (x, y, z mm), skull stripping, N4,
    crop ``margin`` (voxels around the brain box), stored image ``dtype``, and the share of cases per
    split (the rest is train), and the QC gate's bounds."""

    modalities: tuple[str, ...] = MODALITIES
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    skull_strip: SkullStrip = SkullStrip.AUTO
    n4: bool = False
    register: bool = True
    margin: int = 4
    dtype: str = "float16"
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    split_seed: int = 0
    #: QC gate (:mod:`fedseg.imaging.qc_gate`): plausible brain volume (ml), the largest brain share of
    #: the head and of the brain surface on the scalp; a plan for reduced phantoms sets smaller volumes.
    qc_brain_ml: tuple[float, float] = (800.0, 2000.0)
    qc_max_brain_share: float = 0.97
    qc_max_scalp_contact: float = 0.9

    def __post_init__(self) -> None:
        where = "preprocessing"
        require(self.modalities == MODALITIES, where, f"modalities must be {list(MODALITIES)} in that order")
        require(all(0.1 <= s <= 10.0 for s in self.spacing), where, f"spacing must lie in 0.1..10 mm, got {self.spacing}")
        require(0 <= self.margin <= 64, where, f"margin must lie in 0..64 voxels, got {self.margin}")
        require(self.dtype in ("float16", "float32"), where, f"dtype must be float16 or float32, got {self.dtype!r}")
        require(0.0 <= self.val_fraction < 1.0, where, "val_fraction must lie in [0, 1)")
        require(0.0 <= self.test_fraction < 1.0, where, "test_fraction must lie in [0, 1)")
        require(self.val_fraction + self.test_fraction < 1.0, where, "val_fraction + test_fraction must be < 1")
        lo, hi = self.qc_brain_ml
        require(0.0 <= lo < hi, where, f"qc_brain_ml must be [low, high] ml with 0 <= low < high, got {self.qc_brain_ml}")
        require(0.0 < self.qc_max_brain_share <= 1.0, where, "qc_max_brain_share must lie in (0, 1]")
        require(0.0 < self.qc_max_scalp_contact <= 1.0, where, "qc_max_scalp_contact must lie in (0, 1]")

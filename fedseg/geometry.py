"""The geometry that maps a stored (cropped, resampled) case grid back onto its original scan.

Ground layer: written by preprocessing (:mod:`fedseg.workflow.preprocess`), stored in every case file
(:mod:`fedseg.data.dataset`) and read by inference to put predictions back on the scan's grid
(:mod:`fedseg.imaging.inverse`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fedseg.errors import DatasetError

__all__ = ["CaseGeometry"]


@dataclass(frozen=True)
class CaseGeometry:
    """Where the stored grid lies, and the original reference scan it came from (ITK x, y, z order).

    ``crop_box`` is (z0, z1, y0, y1, x0, x1), half-open array indices of the stored block inside the
    resampled (canonical-orientation) grid of size ``resampled_size``.
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    crop_box: tuple[int, int, int, int, int, int]
    resampled_size: tuple[int, int, int]
    original_size: tuple[int, int, int]
    original_spacing: tuple[float, float, float]
    original_origin: tuple[float, float, float]
    original_direction: tuple[float, ...]

    def to_attrs(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float64 if isinstance(v[0], float) else np.int64)
                for k, v in asdict(self).items()}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str) -> CaseGeometry:
        values: dict[str, Any] = {}
        for name, default in cls.__dataclass_fields__.items():  # noqa: B007
            if name not in attrs:
                raise DatasetError(f"{where}: missing geometry attribute {name!r}")
            arr = np.asarray(attrs[name])
            is_int = name in ("crop_box", "resampled_size", "original_size")
            values[name] = tuple(int(v) for v in arr) if is_int else tuple(float(v) for v in arr)
        return cls(**values)

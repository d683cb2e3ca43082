"""BraTS label conventions and the nested evaluation regions WT, TC and ET.

BraTS label maps use 0 for background, 1 for the necrotic / non-enhancing tumour core (NCR/NET),
2 for peritumoural oedema (ED) and one label for the enhancing tumour (ET):

- BraTS 2018-2022 (``brats2021``): ET = 4, so valid values are {0, 1, 2, 4}.
- BraTS 2023 and later (``brats2023``): ET = 3, so valid values are {0, 1, 2, 3}.
  fedseg's *internal* labels 0, 1, 2, 3 are numerically this convention.

The regions evaluated are nested (Menze et al., "The Multimodal Brain Tumor Image Segmentation
Benchmark (BRATS)", IEEE TMI 2015; Bakas et al., arXiv:1811.02629):

- WT (whole tumour)  = NCR/NET + ED + ET
- TC (tumour core)   = NCR/NET + ET
- ET (enhancing)     = ET

Label maps may be any integer dtype, or floats whose values are all integral (some BraTS files are
stored as float32); anything else raises :class:`~fedseg.errors.MetricsError` naming the values.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from fedseg.errors import MetricsError
from fedseg.metrics.voxel_report import format_values, where_voxels

__all__ = [
    "REGIONS",
    "LabelConvention",
    "check_labels",
    "detect_convention",
    "label_to_regions",
    "label_values",
]

REGIONS: tuple[str, str, str] = ("WT", "TC", "ET")


class LabelConvention(str, Enum):
    """Which value marks the enhancing tumour: detected from the values present, or forced."""

    AUTO = "auto"
    BRATS2021 = "brats2021"  # ET = 4 (BraTS 2018-2022)
    BRATS2023 = "brats2023"  # ET = 3 (BraTS 2023+; fedseg's internal labels)


_VALID: dict[LabelConvention, frozenset[int]] = {
    LabelConvention.BRATS2021: frozenset({0, 1, 2, 4}),
    LabelConvention.BRATS2023: frozenset({0, 1, 2, 3}),
}
_ET_LABEL: dict[LabelConvention, int] = {LabelConvention.BRATS2021: 4, LabelConvention.BRATS2023: 3}


def label_values(label: np.ndarray) -> tuple[int, ...]:
    """Return the sorted distinct values of an integer label map.

    Uses equality passes for a small value range (much faster than ``np.unique`` on 240x240x155).
    Raises MetricsError for non-finite or non-integral values or an unsupported dtype.
    """
    a = np.asarray(label)
    if a.dtype == np.bool_:
        return tuple(int(v) for v in np.flatnonzero([(~a).any(), a.any()]))
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise MetricsError(f"expected integer label values, found NaN or infinity in {where_voxels(~np.isfinite(a))}")
        rounded = np.rint(a)
        bad = a != rounded
        if bad.any():
            shown = ", ".join(f"{v:g}" for v in np.unique(a[bad])[:5])
            raise MetricsError(f"expected integer label values, found non-integer values {shown} in {where_voxels(bad)}")
        a = rounded.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise MetricsError(f"expected an integer label map, found dtype {a.dtype}")
    if a.size == 0:
        return ()
    lo, hi = int(a.min()), int(a.max())
    if hi - lo <= 16:
        # A few equality passes beat np.unique (a full sort) on 240x240x155 label maps by ~20x.
        return tuple(v for v in range(lo, hi + 1) if v in (lo, hi) or bool((a == v).any()))
    return tuple(int(v) for v in np.unique(a))


def detect_convention(label: np.ndarray) -> LabelConvention:
    """Return the convention of a label map from the values present.

    4 present -> brats2021; 3 present -> brats2023; both -> MetricsError. With neither there is no
    enhancing tumour and both conventions give the same regions; brats2023 (fedseg's internal
    convention) is returned. Unexpected values raise MetricsError naming them.
    """
    return check_labels(label, LabelConvention.AUTO)


def check_labels(label: np.ndarray, convention: LabelConvention) -> LabelConvention:
    """Validate the values of ``label`` against ``convention`` and return the resolved convention."""
    convention = LabelConvention(convention)
    values = set(label_values(label))
    if convention is LabelConvention.AUTO:
        if {3, 4} <= values:
            raise MetricsError(
                "found both label 3 (ET in brats2023) and label 4 (ET in brats2021); "
                "expected one convention, values present are " + _fmt(values)
            )
        unexpected = values - (_VALID[LabelConvention.BRATS2021] | _VALID[LabelConvention.BRATS2023])
        expected = "brats2021 labels {0, 1, 2, 4} or brats2023 labels {0, 1, 2, 3}"
        convention = LabelConvention.BRATS2021 if 4 in values else LabelConvention.BRATS2023
    else:
        unexpected = values - _VALID[convention]
        expected = f"{convention.value} labels {_fmt(_VALID[convention])}"
    if unexpected:
        raise MetricsError(
            f"unexpected label values {_fmt(unexpected)}; expected {expected} (values present: {_fmt(values)})"
        )
    return convention


def label_to_regions(label: np.ndarray, convention: LabelConvention) -> dict[str, np.ndarray]:
    """Return the boolean masks ``{"WT", "TC", "ET"}`` of a BraTS label map.

    ``convention`` may be AUTO (detected by :func:`detect_convention`). Values are validated first.
    """
    resolved = check_labels(label, convention)
    return _regions(np.asarray(label), resolved)


def _regions(label: np.ndarray, resolved: LabelConvention) -> dict[str, np.ndarray]:
    """Return the region masks of an already validated label map."""
    et = label == _ET_LABEL[resolved]
    tc = et | (label == 1)
    wt = tc | (label == 2)
    return {"WT": wt, "TC": tc, "ET": et}


def _fmt(values: set[int] | frozenset[int]) -> str:
    return format_values(values)  # a few values and a count, never thousands

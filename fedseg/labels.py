"""The label and region vocabulary of fedseg: every label convention, the regions, the modalities.

fedseg's *internal* labels (DESIGN.md §4.1) are 0 background, 1 NCR/NETC (necrotic / non-enhancing
tumour core), 2 ED/SNFH (oedema, surrounding non-enhancing FLAIR hyperintensity), 3 ET (enhancing
tumour). Raw label maps arrive in one of these conventions:

- ``brats2021`` (BraTS 2018-2022): 1 NCR/NETC, 2 ED, 4 ET.
- ``brats2023`` (BraTS 2023+): 1 NCR, 2 ED/SNFH, 3 ET; numerically the internal labels.
- ``nnunet-brats`` (nnU-Net's BraTS conversion, MSD Task01): 1 ED, 2 NCR/NETC, 3 ET.
- ``brats2024-post`` (BraTS 2024 post-treatment glioma): 1 NETC, 2 SNFH, 3 ET, 4 RC (resection
  cavity). The cavity is not tumour: it maps to internal background and lies in none of WT, TC, ET,
  so writing internal labels back in this convention can never produce a 4.

The evaluated regions are nested (Menze et al., IEEE TMI 2015; Bakas et al., arXiv:1811.02629):
WT (whole tumour) = NCR/NETC + ED + ET, TC (tumour core) = NCR/NETC + ET, ET = ET.

Auto-detection (:func:`decide_convention`) decides over a whole dataset, never case by case, from which
of the values 3 and 4 occur anywhere in it: both -> ``brats2024-post`` (only that convention numbers
both, so a 4 there is a resection cavity, never ET); 4s and no 3 -> ``brats2021``; 3s and no 4 ->
``brats2023``; neither -> the caller's fallback (all conventions then give the same regions). nnU-Net
numbering (1 ED) cannot be told from the values: it comes from nnU-Net's dataset.json or ``--labels``.

Only the standard library is imported at module level (the CLI lists these enums in ``--help``);
NumPy is imported inside the functions that need it. :func:`region_masks` and
:func:`regions_to_label` use only ``==``, ``|`` and indexing, so they accept NumPy arrays and torch
tensors alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from fedseg.errors import MetricsError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FROM_INTERNAL",
    "LABEL_MAPS",
    "MODALITIES",
    "REFERENCE_MODALITY",
    "REGIONS",
    "LabelConvention",
    "LabelDecision",
    "Layout",
    "check_labels",
    "decide_convention",
    "from_internal",
    "label_to_regions",
    "label_values",
    "region_masks",
    "regions_to_label",
    "to_internal",
]

#: The evaluated regions, in the order of the model's output channels.
REGIONS: tuple[str, str, str] = ("WT", "TC", "ET")
#: The channel order of every site dataset and model input.
MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
#: The modality whose grid every other one is registered and resampled to (BraTS co-registers to T1ce).
REFERENCE_MODALITY = "t1ce"


class LabelConvention(str, Enum):
    """How a raw label map numbers the tumour sub-regions (see the module docstring)."""

    AUTO = "auto"  # decided over the whole dataset by decide_convention
    BRATS2021 = "brats2021"  # 1 NCR/NETC, 2 ED, 4 ET (BraTS 2018-2022)
    BRATS2023 = "brats2023"  # 1 NCR, 2 ED/SNFH, 3 ET (BraTS 2023+, the internal numbering)
    NNUNET_BRATS = "nnunet-brats"  # 1 ED, 2 NCR/NETC, 3 ET (nnU-Net's BraTS conversion, MSD Task01)
    BRATS2024_POST = "brats2024-post"  # 1 NETC, 2 SNFH, 3 ET, 4 resection cavity (BraTS 2024 post-treatment)


class Layout(str, Enum):
    """Raw dataset layouts: discovered by ``fedseg preprocess``, written by ``fedseg synth`` (not auto/csv)."""

    AUTO = "auto"
    BRATS2021 = "brats2021"
    BRATS2023 = "brats2023"
    NNUNET = "nnunet"
    CSV = "csv"


#: Raw value -> internal value, per convention.
LABEL_MAPS: dict[LabelConvention, dict[int, int]] = {
    LabelConvention.BRATS2021: {0: 0, 1: 1, 2: 2, 4: 3},
    LabelConvention.BRATS2023: {0: 0, 1: 1, 2: 2, 3: 3},
    LabelConvention.NNUNET_BRATS: {0: 0, 1: 2, 2: 1, 3: 3},
    LabelConvention.BRATS2024_POST: {0: 0, 1: 1, 2: 2, 3: 3, 4: 0},  # RC is background for every region
}
#: Internal value -> raw value, per convention (what ``predict`` writes).
FROM_INTERNAL: dict[LabelConvention, dict[int, int]] = {
    LabelConvention.BRATS2021: {0: 0, 1: 1, 2: 2, 3: 4},
    LabelConvention.BRATS2023: {0: 0, 1: 1, 2: 2, 3: 3},
    LabelConvention.NNUNET_BRATS: {0: 0, 1: 2, 2: 1, 3: 3},
    LabelConvention.BRATS2024_POST: {0: 0, 1: 1, 2: 2, 3: 3},
}


def _concrete(convention: LabelConvention | str, what: str) -> LabelConvention:
    conv = LabelConvention(convention)
    if conv is LabelConvention.AUTO:
        raise ValueError(f"cannot {what} the 'auto' convention; choose one of "
                         + ", ".join(c.value for c in LABEL_MAPS))
    return conv


def _lut(mapping: Mapping[int, int]) -> np.ndarray:
    import numpy as np

    lut = np.zeros(max(mapping) + 1, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def to_internal(label: np.ndarray, convention: LabelConvention | str) -> np.ndarray:
    """Return ``label`` renumbered to the internal labels (uint8); unknown values raise ValueError."""
    import numpy as np

    conv = _concrete(convention, "read labels in")
    mapping = LABEL_MAPS[conv]
    values = np.unique(label)
    unknown = [int(v) for v in values if int(v) not in mapping or v != int(v)]
    if unknown:
        raise ValueError(f"unexpected label values {unknown}; the {conv.value} convention allows {sorted(mapping)}")
    return _lut(mapping)[np.asarray(label).astype(np.int64)]


def from_internal(label: np.ndarray, convention: LabelConvention | str) -> np.ndarray:
    """Return an internal label map (0..3) renumbered to ``convention`` (uint8), e.g. 3 -> 4 for brats2021."""
    import numpy as np

    conv = _concrete(convention, "write labels in")
    label = np.asarray(label)
    if label.size and (int(label.max()) > 3 or int(label.min()) < 0):
        raise ValueError(f"internal labels must lie in 0..3 (an internal label map holds only 0, 1, 2, 3), "
                         f"got a {int(label.max()) if int(label.max()) > 3 else int(label.min())}")
    return _lut(FROM_INTERNAL[conv])[label.astype(np.int64)]


def label_values(label: np.ndarray) -> tuple[int, ...]:
    """Return the sorted distinct values of an integer label map.

    Uses equality passes for a small value range (much faster than ``np.unique`` on 240x240x155).
    Raises MetricsError for non-finite or non-integral values or an unsupported dtype.
    """
    import numpy as np

    a = np.asarray(label)
    if a.dtype == np.bool_:
        return tuple(int(v) for v in np.flatnonzero([(~a).any(), a.any()]))
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            from fedseg.voxel_report import where_voxels

            raise MetricsError(f"expected integer label values, found NaN or infinity in {where_voxels(~np.isfinite(a))}")
        rounded = np.rint(a)
        bad = a != rounded
        if bad.any():
            shown = ", ".join(f"{v:g}" for v in np.unique(a[bad])[:5])
            from fedseg.voxel_report import where_voxels

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


@dataclass(frozen=True)
class LabelDecision:
    """Which convention a dataset's label maps use, and why (logged and written into reports)."""

    convention: LabelConvention
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"convention": self.convention.value, "reason": self.reason}


def decide_convention(
    value_sets: Iterable[Iterable[int]],
    *,
    override: LabelConvention | str = LabelConvention.AUTO,
    fallback: LabelConvention = LabelConvention.BRATS2023,
) -> LabelDecision:
    """Decide the convention of a whole dataset from the value sets of all its label maps.

    ``override`` (``--labels``) wins when it is not AUTO. Otherwise the rules of the module docstring
    apply; ``fallback`` is used when no map holds a 3 or a 4. Values that fit no convention are not
    judged here: renumbering (:func:`to_internal`, :func:`check_labels`) names them per file.
    """
    override = LabelConvention(override)
    if override is not LabelConvention.AUTO:
        return LabelDecision(override, f"forced: --labels {override.value}")
    sets = [set(v) for v in value_sets]
    with3, with4 = sum(3 in s for s in sets), sum(4 in s for s in sets)
    scanned = f"{len(sets)} label map(s) read"
    if with3 and with4:
        return LabelDecision(LabelConvention.BRATS2024_POST,
                             f"{scanned}: label 3 in {with3} and label 4 in {with4}; only BraTS 2024 post-treatment "
                             "numbers both (3 ET, 4 resection cavity, which is no tumour region)")
    if with4:
        return LabelDecision(LabelConvention.BRATS2021,
                             f"{scanned}: label 4 in {with4} and no label 3 anywhere; BraTS 2018-2022 (4 ET)")
    if with3:
        return LabelDecision(LabelConvention.BRATS2023,
                             f"{scanned}: label 3 in {with3} and no label 4 anywhere; BraTS 2023+ (3 ET)")
    return LabelDecision(fallback, f"{scanned}: no label 3 or 4 anywhere (no enhancing tumour), "
                                   f"so every convention gives the same regions; {fallback.value} assumed")


def check_labels(label: np.ndarray, convention: LabelConvention | str) -> LabelConvention:
    """Validate the values of ``label`` against ``convention`` and return the resolved convention.

    AUTO resolves the convention from this map alone (:func:`decide_convention` over one value set); callers
    that hold a dataset decide first and pass the result. Unexpected values raise MetricsError naming them.
    """
    convention = LabelConvention(convention)
    values = set(label_values(label))
    if convention is LabelConvention.AUTO:
        convention = decide_convention([values]).convention
        expected = "labels {0, 1, 2, 3, 4} (brats2021, brats2023 or brats2024-post)"
    else:
        expected = f"{convention.value} labels {_fmt(LABEL_MAPS[convention])}"
    unexpected = values - set(LABEL_MAPS[convention])
    if unexpected:
        raise MetricsError(f"unexpected label values {_fmt(unexpected)}; expected {expected} "
                           f"(values present: {_fmt(values)})")
    return convention


def region_masks(label: Any, convention: LabelConvention | str = LabelConvention.BRATS2023) -> dict[str, Any]:
    """Return the boolean masks ``{"WT", "TC", "ET"}`` of a label map in ``convention`` (not validated).

    The default is the internal numbering. Works on NumPy arrays and torch tensors (``==`` and ``|``
    only). Values outside the convention, and the resection cavity, lie in no region.
    """
    mapping = LABEL_MAPS[_concrete(convention, "read regions in")]

    def raw(internal: int) -> Any:
        masks = [label == r for r, i in mapping.items() if i == internal]
        out = masks[0]
        for m in masks[1:]:
            out = out | m
        return out

    et = raw(3)
    tc = et | raw(1)
    return {"WT": tc | raw(2), "TC": tc, "ET": et}


def label_to_regions(label: np.ndarray, convention: LabelConvention | str) -> dict[str, np.ndarray]:
    """Return the region masks of a label map after validating its values (AUTO: detected from them)."""
    import numpy as np

    label = np.asarray(label)
    return region_masks(label, check_labels(label, convention))


def regions_to_label(wt: Any, tc: Any, et: Any) -> np.ndarray:
    """Return the internal uint8 label map of region masks, imposing ET ⊂ TC ⊂ WT.

    WT outside TC is oedema (2), TC outside ET is NCR/NETC (1), ET is 3; a TC or ET voxel outside WT
    is dropped (background), so the nesting holds whatever the masks.
    """
    import numpy as np

    wt = np.asarray(wt, dtype=bool)
    tc = wt & np.asarray(tc, dtype=bool)
    et = tc & np.asarray(et, dtype=bool)
    label = np.zeros(wt.shape, dtype=np.uint8)
    label[wt] = 2
    label[tc] = 1
    label[et] = 3
    return label


def _fmt(values: Iterable[int]) -> str:
    from fedseg.voxel_report import format_values

    return format_values(values)  # a few values and a count, never thousands

"""Validation Dice per region on whole (cropped) validation volumes, aggregated to site-level means.

Each validation case is predicted with the same sliding-window inference as ``fedseg predict`` (Gaussian
blending, no mirroring), turned into a label map with the region hierarchy, and scored with the metrics
module's Dice under the BraTS empty-region convention (both empty: 1; exactly one empty: 0). Only the
mean over cases leaves this function: per-case numbers are patient-level data and never enter an
artifact. HD95 is not computed here (it is costly and not needed to compare before/after).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from fedseg.data.dataset import CaseReader
from fedseg.errors import DatasetError
from fedseg.labels import REGIONS

__all__ = ["validate"]

log = logging.getLogger(__name__)


def validate(
    model: object,
    readers: Sequence[CaseReader],
    *,
    patch_size: tuple[int, int, int],
    overlap: float = 0.5,
    device: str = "cpu",
    amp: bool = False,
    on_case: Callable[[int, int], None] | None = None,
) -> dict[str, float] | None:
    """Return the mean Dice per region {"WT", "TC", "ET"} over ``readers``, or None when there are none.

    ``on_case(done, total)`` is called after each case (for a progress display).
    """
    from fedseg.inference.regions import probabilities_to_label
    from fedseg.inference.sliding_window import sliding_window_predict
    from fedseg.labels import LabelConvention, label_to_regions
    from fedseg.metrics.empty import EmptyPolicy
    from fedseg.metrics.overlap import dice

    if not readers:
        return None
    scores: dict[str, list[float]] = {r: [] for r in REGIONS}
    for i, reader in enumerate(readers):
        with reader:
            if not reader.has_label:
                raise DatasetError(f"{reader.path}: a validation case needs a label")
            image, ref = reader.image(), reader.label()
        probs = sliding_window_predict(model, image, patch_size=patch_size, overlap=overlap,  # type: ignore[arg-type]
                                       device=device, amp=amp)
        pred = probabilities_to_label(probs)
        pred_regions = label_to_regions(pred, LabelConvention.BRATS2023)
        ref_regions = label_to_regions(ref, LabelConvention.BRATS2023)
        for region in REGIONS:
            scores[region].append(float(dice(pred_regions[region], ref_regions[region], empty=EmptyPolicy.BRATS)))
        if on_case is not None:
            on_case(i + 1, len(readers))
    means = {r: float(np.mean(v)) for r, v in scores.items()}
    log.info("validation Dice over %d case(s): %s", len(readers), means)
    return means

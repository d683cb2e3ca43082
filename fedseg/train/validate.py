"""Validation Dice per region on whole (cropped) validation volumes, aggregated to site-level means.

Each validation case is predicted and scored by :func:`fedseg.inference.score.score_model`, the scorer of
``fedseg evaluate --model`` and ``fedseg simulate``: the same sliding-window inference as ``fedseg
predict`` (Gaussian blending, no mirroring), labels by the region hierarchy, Dice under the BraTS
empty-region convention (both empty: 1; exactly one empty: 0). Only the mean over cases leaves this
function: per-case numbers are patient-level data and never enter an artifact. HD95 is not computed
here (it is costly and not needed to compare before/after).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fedseg.data.dataset import CaseReader

if TYPE_CHECKING:
    import torch

__all__ = ["validate"]

log = logging.getLogger(__name__)


def validate(
    model: torch.nn.Module,
    readers: Sequence[CaseReader],
    *,
    patch_size: tuple[int, int, int],
    overlap: float = 0.5,
    device: str = "cpu",
    amp: bool = False,
    on_case: Callable[[int, int], None] | None = None,
) -> dict[str, float] | None:
    """Return the mean Dice per region {"WT", "TC", "ET"} over ``readers``, or None when there are none.

    ``device`` is ``auto | cpu | cuda | cuda:N``. A case without a label raises DatasetError.
    ``on_case(done, total)`` is called after each case (for a progress display). Cases are predicted in
    windows of ``patch_size`` (the training patch): the U-Net's instance norms take their statistics over the
    window, so a larger window would score another model (whole volumes scored the demo's sites' WT 0.13-0.24
    lower than 32³ windows for the same weights).
    """
    from fedseg.inference.predict import PredictOptions
    from fedseg.inference.score import score_model
    from fedseg.inference.sources import reader_inputs

    if not readers:
        return None
    options = PredictOptions(device=device, overlap=overlap, amp=amp)
    scores = score_model(model, reader_inputs(readers), patch_size=patch_size, options=options, on_case=on_case)
    means = scores.mean_dice()
    log.info("validation Dice over %d case(s): %s", len(readers), means)
    return means

"""What a metric returns when a region is empty in the prediction, the reference, or both.

Two conventions, chosen with :class:`EmptyPolicy` (``--empty`` on the command line):

``brats`` (default; the BraTS challenge up to 2021, CaPTk):
    both empty          -> Dice 1, HD95 0 mm (a correct "no tumour" call is perfect)
    exactly one empty   -> Dice 0, HD95 = the image diagonal in mm, sqrt(sum((shape * spacing)^2))
                           (373.13 mm for 240x240x155 at 1 mm), the largest distance the grid allows
``nan`` (MONAI's HD95 / current BraTS practice of leaving undefined values out of the means):
    both empty          -> Dice NaN (0/0), HD95 NaN
    exactly one empty   -> Dice 0 (well defined: 2*0 / (0 + |other|)), HD95 NaN (no surface to measure)
    Keeping Dice 0 here, rather than NaN, keeps a missed tumour (or a hallucinated one) in the mean
    and keeps Dice symmetric; MONAI's ``compute_dice(ignore_empty=True)`` differs only when the
    reference is empty and the prediction is not (MONAI: NaN, fedseg: 0).

Sensitivity and specificity follow the same rule: a 0/0 ratio (no reference voxels, resp. no
background voxels) is 1 under ``brats`` and NaN under ``nan``.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["EmptyPolicy"]


class EmptyPolicy(str, Enum):
    """Convention for empty regions (see the module docstring)."""

    BRATS = "brats"
    NAN = "nan"

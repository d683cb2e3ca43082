"""Tissue intensities per MRI contrast, and rendering a tissue map into an image.

Relative intensities follow the usual appearance of 1.5/3 T clinical sequences (e.g. the tissue
parameters of the BrainWeb simulator, Cocosco et al., NeuroImage 1997, and the BraTS sub-region
descriptions, Menze et al., IEEE TMI 2015):

- T1: fat-rich scalp bright, WM > GM > CSF (dark), cortical bone dark.
- T1ce: as T1, with the enhancing tumour rim the brightest tissue in the brain; necrosis dark.
- T2: CSF brightest, GM > WM, edema and necrosis bright.
- FLAIR: as T2 with the CSF signal suppressed (darker than WM); edema the brightest tissue.

Values are fractions of a nominal full scale; a site profile later scales and offsets them, and
rendering adds a per-case jitter, a smooth multiplicative texture, a bias field and noise.
"""

from __future__ import annotations

import numpy as np

from fedseg.synth.phantom import Tissue

__all__ = ["CONTRAST", "tissue_table"]

# Columns follow Tissue: AIR, SCALP, SKULL, CSF, GM, WM, NCR, ED, ET.
CONTRAST: dict[str, tuple[float, ...]] = {
    "t1": (0.0, 0.90, 0.08, 0.15, 0.45, 0.66, 0.20, 0.36, 0.46),
    "t1ce": (0.0, 0.90, 0.08, 0.16, 0.45, 0.66, 0.18, 0.38, 1.00),
    "t2": (0.0, 0.50, 0.05, 1.00, 0.58, 0.40, 0.88, 0.80, 0.62),
    "flair": (0.0, 0.55, 0.05, 0.10, 0.58, 0.42, 0.45, 0.95, 0.72),
}


def tissue_table(rng: np.random.Generator, modality: str, *, jitter: float = 0.04) -> np.ndarray:
    """Return this case's float32 intensity per Tissue for ``modality``, each value jittered by ±``jitter``.

    The jitter is small enough that every ordering stated in the module docstring survives it.
    """
    base = np.asarray(CONTRAST[modality], dtype=np.float32)
    factors = rng.uniform(1.0 - jitter, 1.0 + jitter, size=base.shape).astype(np.float32)
    table = base * factors
    table[Tissue.AIR] = 0.0
    return table

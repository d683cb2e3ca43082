"""Tissue intensities per MRI contrast, and rendering a tissue map into an image.

Relative intensities follow the usual appearance of 1.5/3 T clinical sequences (e.g. the tissue
parameters of the BrainWeb simulator, Cocosco et al., NeuroImage 1997, and the BraTS sub-region
descriptions, Menze et al., IEEE TMI 2015):

- T1: fat-rich scalp bright, WM > GM > CSF (dark), cortical bone dark.
- T1ce: as T1, with the enhancing tumour rim the brightest tissue in the brain; necrosis dark.
- T2: CSF brightest, GM > WM, edema and necrosis bright.
- FLAIR: as T2 with the CSF signal suppressed (darker than WM); edema the brightest tissue.
- Realistic heads add skin, fat (brighter than WM on T1, still bright on T2/FLAIR turbo spin echo),
  muscle (darker than grey matter on T1, dark on T2), fatty marrow (bright on T1), the vitreous and
  the spinal CSF (as CSF), and the spinal cord (as white matter).

Values are fractions of a nominal full scale; a site profile later scales and offsets them, and
rendering adds a per-case jitter, a smooth multiplicative texture, a bias field and noise.
"""

from __future__ import annotations

import numpy as np

from fedseg.synth.phantom import SIMPLE_TISSUES, Tissue

__all__ = ["CONTRAST", "tissue_table"]

# Columns follow Tissue: AIR, SCALP, SKULL, CSF, GM, WM, NCR, ED, ET, then (realistic heads only)
# SKIN, FAT, MUSCLE, MARROW, EYE, CANAL, CORD.
CONTRAST: dict[str, tuple[float, ...]] = {
    "t1": (0.0, 0.90, 0.08, 0.15, 0.45, 0.66, 0.20, 0.36, 0.46, 0.55, 0.95, 0.36, 0.80, 0.12, 0.15, 0.58),
    "t1ce": (0.0, 0.90, 0.08, 0.16, 0.45, 0.66, 0.18, 0.38, 1.00, 0.58, 0.95, 0.40, 0.82, 0.13, 0.16, 0.60),
    "t2": (0.0, 0.50, 0.05, 1.00, 0.58, 0.40, 0.88, 0.80, 0.62, 0.45, 0.62, 0.22, 0.50, 1.00, 1.00, 0.45),
    "flair": (0.0, 0.55, 0.05, 0.10, 0.58, 0.42, 0.45, 0.95, 0.72, 0.50, 0.62, 0.25, 0.50, 0.10, 0.10, 0.48),
}


def tissue_table(rng: np.random.Generator, modality: str, *, jitter: float = 0.04, tissues: int = SIMPLE_TISSUES) -> np.ndarray:
    """Return this case's float32 intensity per Tissue for ``modality``, each value jittered by ±``jitter``.

    Only the first ``tissues`` classes are jittered (and drawn from ``rng``); the rest stay 0, so a
    simple head (9 classes) draws what it always drew. The jitter is small enough that every ordering
    stated in the module docstring survives it.
    """
    base = np.asarray(CONTRAST[modality], dtype=np.float32)
    factors = rng.uniform(1.0 - jitter, 1.0 + jitter, size=tissues).astype(np.float32)
    table = np.zeros(len(Tissue), dtype=np.float32)
    table[:tissues] = base[:tissues] * factors
    table[Tissue.AIR] = 0.0
    return table

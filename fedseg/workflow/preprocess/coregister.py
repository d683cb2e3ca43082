"""The ``register`` step of preprocessing: every other modality rigidly onto the reference (DESIGN.md §5).

A modality on the reference's grid is taken as co-registered (skipped); one that fails to register falls
back on the scanner coordinates (no transform) with a warning; one that does not converge or moves
implausibly far keeps its result with a warning (the QC gate judges the figures).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.errors import ImageError
from fedseg.imaging.qc_gate import MAX_ROTATION_DEG as _MAX_ROTATION_DEG  # implausible for one session: warn
from fedseg.imaging.qc_gate import MAX_TRANSLATION_MM as _MAX_TRANSLATION_MM
from fedseg.labels import MODALITIES, REFERENCE_MODALITY

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["register_modalities"]


def register_modalities(canon: Mapping[str, sitk.Image], config: PreprocessConfig, *, seed: int = 0
                        ) -> tuple[dict[str, sitk.Transform | None], dict[str, Any], list[str]]:
    """Register each modality of ``canon`` onto the reference; return transforms, QC figures and warnings.

    A transform maps reference points into the modality's space (None: the scanner coordinates). The
    registrations run side by side, one Python thread each, when SimpleITK may use more than one thread
    (each registration is single-threaded, so the results do not depend on that count).
    """
    import SimpleITK as sitk

    from fedseg.imaging.register import WORK_SPACING, grids_coincide, register_rigid
    from fedseg.imaging.threads import single_threaded

    fixed = canon[REFERENCE_MODALITY]
    transforms: dict[str, sitk.Transform | None] = dict.fromkeys(MODALITIES)
    registration: dict[str, Any] = {}
    warnings: list[str] = []
    todo = []
    for m in MODALITIES:
        if m == REFERENCE_MODALITY:
            continue
        if not config.register or grids_coincide(fixed, canon[m]):
            registration[m] = {"skipped": True, "reason": "disabled" if not config.register else "same grid"}
        else:
            todo.append(m)

    def run(m: str) -> Any:
        try:
            return register_rigid(fixed, canon[m], seed=seed, work_spacing=max(WORK_SPACING, min(config.spacing)))
        except ImageError as exc:
            return exc

    # One thread per registration whenever more than one core is ours: each runs single-threaded and never
    # spin-waits, so three on two cores share them evenly (two workers would leave a core idle for the third).
    workers = max(1, len(todo)) if sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() > 1 else 1
    # The one-thread setting is entered here, before any worker thread starts: it is process-wide.
    with single_threaded(), ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(zip(todo, pool.map(run, todo), strict=True))
    for m in todo:  # in MODALITIES order, whatever order the threads finished in
        result = results[m]
        if isinstance(result, ImageError):  # fall back on the scanner coordinates, and say so
            registration[m] = {"skipped": False, "failed": True, "reason": str(result)}
            warnings.append(f"registration of {m} to t1ce failed ({result}); resampled by scanner coordinates only")
            continue
        transforms[m] = result.transform
        registration[m] = {"skipped": False, "metric": result.metric, "rotation_deg": result.rotation_deg,
                           "translation_mm": result.translation_mm, "converged": result.converged}
        if not result.converged or not np.isfinite(result.metric):
            warnings.append(f"registration of {m} to t1ce did not converge (metric {result.metric:.3f})")
        elif result.rotation_deg > _MAX_ROTATION_DEG or result.translation_mm > _MAX_TRANSLATION_MM:
            warnings.append(f"registration of {m} to t1ce moved it implausibly far ({result.rotation_deg:.1f} deg, "
                            f"{result.translation_mm:.1f} mm)")
    return transforms, registration, warnings

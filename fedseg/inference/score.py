"""Score a model on labelled cases: predict each, turn probabilities into labels, compare with the reference.

The one scorer behind validation before and after local training (:func:`fedseg.train.validate.validate`),
``fedseg evaluate --model`` (:func:`fedseg.inference.evaluate_model.evaluate_model`) and every round of
``fedseg simulate``. Each case is predicted on its stored (preprocessed) grid with the sliding window of
:func:`fedseg.inference.predict.predict_probabilities`, turned into nested labels with the region hierarchy
(:func:`fedseg.inference.regions.probabilities_to_label`) and scored in the internal numbering (ET = 3)
against its stored label:

* ``full=False``: Dice per region only (HD95 is costly and validation does not need it);
* ``full=True``: every metric of :func:`fedseg.metrics.case_metrics` at the stored spacing.

Empty regions follow ``empty`` (default BraTS: both empty 1, exactly one empty 0; see
:mod:`fedseg.metrics.empty`). A case without a label is an error. With ``keep_going`` a failing case
becomes a failure and the others go on; without it the first error propagates (validation must not
silently score fewer cases).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fedseg.device import resolve_device
from fedseg.errors import DatasetError, FedsegError
from fedseg.inference.predict import PredictOptions, predict_probabilities
from fedseg.inference.regions import probabilities_to_label
from fedseg.inference.sources import InputCase, PreparedCase
from fedseg.labels import REGIONS

if TYPE_CHECKING:
    import torch

    from fedseg.metrics import EmptyPolicy, ScoringOptions

__all__ = ["CaseScore", "ModelScores", "score_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseScore:
    """The metrics of one case: ``{"WT"|"TC"|"ET": {"dice": ..., ...}}`` (Dice only unless scored in full)."""

    case_id: str
    source: str
    metrics: dict[str, dict[str, float]]
    lesionwise: dict[str, dict[str, float]] | None = None


@dataclass
class ModelScores:
    """Every scored case, in input order, and the cases that failed (``keep_going`` only) as (id, reason)."""

    cases: list[CaseScore] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def mean_dice(self) -> dict[str, float] | None:
        """Return the mean Dice per region over the scored cases, or None when none was scored."""
        if not self.cases:
            return None
        return {r: float(np.mean([c.metrics[r]["dice"] for c in self.cases])) for r in REGIONS}


def _case_metrics(pred: np.ndarray, prepared: PreparedCase, *, full: bool, empty: EmptyPolicy,
                  scoring: ScoringOptions | None) -> tuple[dict[str, dict[str, float]], dict[str, Any] | None]:
    """Return (legacy metrics, lesion-wise metrics or None): Dice only unless ``full``."""
    from fedseg.labels import LabelConvention, label_to_regions
    from fedseg.metrics import dice, score_case

    assert prepared.label is not None
    if full:
        spacing_zyx = tuple(reversed(prepared.geometry.spacing))
        return score_case(pred, prepared.label, spacing_zyx, convention=LabelConvention.BRATS2023, empty=empty,
                          scoring=scoring)
    pred_regions = label_to_regions(pred, LabelConvention.BRATS2023)
    ref_regions = label_to_regions(prepared.label, LabelConvention.BRATS2023)
    return {r: {"dice": float(dice(pred_regions[r], ref_regions[r], empty=empty))} for r in REGIONS}, None


def score_model(
    model: torch.nn.Module,
    cases: Sequence[InputCase],
    *,
    patch_size: tuple[int, int, int],
    options: PredictOptions | None = None,
    full: bool = False,
    empty: EmptyPolicy | str = "brats",
    keep_going: bool = False,
    on_case: Callable[[int, int], None] | None = None,
    scoring: ScoringOptions | None = None,
) -> ModelScores:
    """Predict and score every case of ``cases`` with ``model`` on ``options.device``; return per-case metrics.

    ``patch_size`` is the sliding window (the plan's training patch); ``options`` sets device, overlap,
    batch, mirroring, thresholds, small-component removal and AMP. ``on_case(done, total)`` is called
    after each case, failed or not (progress display). With ``full``, ``scoring`` picks legacy and/or
    lesion-wise metrics (default legacy); without it only Dice is computed.
    """
    from fedseg.metrics import EmptyPolicy

    options = options or PredictOptions()
    policy = EmptyPolicy(empty)
    device = resolve_device(options.device)
    model = model.to(device)
    scores = ModelScores()
    for i, case in enumerate(cases):
        try:
            if case.problem is not None or case.load is None:
                raise DatasetError(f"{case.source}: {case.problem or 'nothing to load'}")
            prepared = case.load()
            if prepared.label is None:
                raise DatasetError(f"{case.source}: case has no reference label to score against")
            probs = predict_probabilities(model, prepared.image, patch_size, options, device)
            pred = probabilities_to_label(probs, options.thresholds, min_component_voxels=options.min_component_voxels)
            metrics, lesionwise = _case_metrics(pred, prepared, full=full, empty=policy, scoring=scoring)
            scores.cases.append(CaseScore(case.case_id, case.source, metrics, lesionwise))
        except (FedsegError, ValueError, RuntimeError, OSError, MemoryError) as exc:
            if not keep_going:
                raise
            log.warning("case %s failed: %s", case.case_id, exc)
            scores.failures.append((case.case_id, str(exc)))
        if on_case is not None:
            on_case(i + 1, len(cases))
    return scores

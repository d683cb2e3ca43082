"""Score a verified global model on a site dataset split, writing no image anywhere.

Every case of the split is predicted on its stored (preprocessed) grid and scored there against its
stored label with :func:`fedseg.metrics.case_metrics`, in the internal label numbering (ET = 3) and
the stored spacing. The result is the same :class:`fedseg.metrics.EvaluationResult` that label-map
evaluation returns, so the CLI renders, exports JSON and CSV the same way. A case that cannot be
predicted or has no label becomes a failure; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fedseg.errors import DatasetError, FedsegError
from fedseg.federation.plan import Plan
from fedseg.inference.predict import PredictOptions, load_global_model, predict_probabilities, resolve_device
from fedseg.inference.regions import probabilities_to_label
from fedseg.inference.sources import dataset_inputs

if TYPE_CHECKING:
    import torch

    from fedseg.metrics import EmptyPolicy, EvaluationResult, ScoringOptions

__all__ = ["evaluate_model"]

log = logging.getLogger(__name__)


def evaluate_model(
    plan: Plan,
    model_path: Path,
    data_dir: Path,
    split: str = "val",
    *,
    options: PredictOptions | None = None,
    empty: EmptyPolicy | str = "brats",
    model: torch.nn.Module | None = None,
    on_total: Callable[[int], None] | None = None,
    on_done: Callable[[str], None] | None = None,
    scoring: ScoringOptions | None = None,
) -> EvaluationResult:
    """Predict and score every case of ``split`` (train, val, test or all) of the dataset ``data_dir``.

    The model file is verified against the plan before anything else (pass ``model`` to reuse an
    already verified network). ``on_total(n)`` is called once with the number of cases, ``on_done``
    after each case; ``scoring`` picks legacy and/or lesion-wise metrics (default: legacy).
    Raises DatasetError when the split holds no case.
    """
    from fedseg.data.dataset import load_dataset
    from fedseg.metrics import CaseFailure, CaseResult, EmptyPolicy, EvaluationResult, LabelConvention
    from fedseg.metrics.scoring import ScoringOptions, score_case

    options = options or PredictOptions()
    empty = EmptyPolicy(empty)
    device = resolve_device(options.device)
    net = model if model is not None else load_global_model(plan, Path(model_path), device)
    net = net.to(device).eval()
    dataset = load_dataset(Path(data_dir))
    cases = dataset_inputs(dataset, plan, split)
    if not cases:
        raise DatasetError(f"{data_dir}: split {split!r} holds no case; choose train, val, test or all")
    if on_total:
        on_total(len(cases))
    results: list[CaseResult] = []
    failures: list[CaseFailure] = []
    for case in cases:
        try:
            assert case.load is not None
            prepared = case.load()
            if prepared.label is None:
                raise DatasetError(f"{case.source}: case has no reference label to score against")
            probs = predict_probabilities(net, prepared.image, plan, options, device)
            pred = probabilities_to_label(probs, options.thresholds, min_component_voxels=options.min_component_voxels)
            spacing_zyx = tuple(reversed(prepared.geometry.spacing))
            metrics, lesionwise = score_case(pred, prepared.label, spacing_zyx, convention=LabelConvention.BRATS2023,
                                             empty=empty, scoring=scoring)
            results.append(CaseResult(case_id=case.case_id, metrics=metrics, pred=f"model {model_path}",
                                      truth=case.source, pred_convention="internal", truth_convention="internal",
                                      lesionwise=lesionwise))
        except (FedsegError, ValueError, RuntimeError, OSError, MemoryError) as exc:
            log.warning("case %s failed: %s", case.case_id, exc)
            failures.append(CaseFailure(case.case_id, str(exc)))
        if on_done:
            on_done(case.case_id)
    return EvaluationResult(
        cases=results,
        failures=failures,
        unpaired=[],
        settings={
            "source": "model",
            "model": str(model_path),
            "data": str(data_dir),
            "split": split,
            "labels": "internal",
            "empty": empty.value,
            "mirror": options.mirror,
            "overlap": options.overlap,
            **(scoring or ScoringOptions()).settings(),
        },
    )

"""Score a network on a site dataset split, writing no image anywhere.

Every case of the split is predicted on its stored (preprocessed) grid and scored there against its
stored label with every metric of :func:`fedseg.metrics.case_metrics`, through the one scorer
:func:`fedseg.inference.score.score_model`. The result is the same :class:`fedseg.metrics.EvaluationResult`
that label-map evaluation returns, so the CLI renders, exports JSON and CSV the same way. A case that
cannot be predicted or has no label becomes a failure; the others go on. The network comes verified from
:func:`fedseg.workflow.model_io.load_global_model`: this module reads no model file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fedseg.errors import DatasetError
from fedseg.inference.predict import PredictOptions
from fedseg.inference.score import score_model
from fedseg.inference.sources import dataset_inputs
from fedseg.inference.spec import InferenceSpec

if TYPE_CHECKING:
    import torch

    from fedseg.metrics import EmptyPolicy, EvaluationResult, ScoringOptions

__all__ = ["evaluate_model"]


def evaluate_model(
    model: torch.nn.Module,
    spec: InferenceSpec,
    data_dir: Path,
    split: str = "val",
    *,
    model_name: str,
    options: PredictOptions | None = None,
    empty: EmptyPolicy | str = "brats",
    on_case: Callable[[int, int], None] | None = None,
    scoring: ScoringOptions | None = None,
) -> EvaluationResult:
    """Predict and score every case of ``split`` (train, val, test or all) of the dataset ``data_dir``.

    ``model_name`` (e.g. the model file's path) is what the result names as the prediction source.
    ``on_case(done, total)`` is called after each case; ``scoring`` picks legacy and/or lesion-wise metrics
    (default: legacy). Raises DatasetError when the split holds no case.
    """
    from fedseg.data.dataset import load_dataset
    from fedseg.metrics import CaseFailure, CaseResult, EmptyPolicy, EvaluationResult, ScoringOptions

    options = options or PredictOptions()
    policy = EmptyPolicy(empty)
    cases = dataset_inputs(load_dataset(Path(data_dir)), spec, split)
    if not cases:
        raise DatasetError(f"{data_dir}: split {split!r} holds no case; choose train, val, test or all")
    scores = score_model(model, cases, patch_size=spec.patch_size, options=options, full=True,
                         empty=policy, keep_going=True, on_case=on_case, scoring=scoring)
    return EvaluationResult(
        cases=[CaseResult(case_id=c.case_id, metrics=c.metrics, pred=f"model {model_name}", truth=c.source,
                          pred_convention="internal", truth_convention="internal", lesionwise=c.lesionwise)
               for c in scores.cases],
        failures=[CaseFailure(case_id, reason) for case_id, reason in scores.failures],
        unpaired=[],
        settings={
            "source": "model",
            "model": model_name,
            "data": str(data_dir),
            "split": split,
            "labels": "internal",
            "empty": policy.value,
            "mirror": options.mirror,
            "overlap": options.overlap,
            **(scoring or ScoringOptions()).settings(),
        },
    )

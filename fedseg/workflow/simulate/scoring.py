"""Score simulated models on the sites' cases with the one scorer, :func:`fedseg.inference.score.score_model`.

A model's score on a set of sites is the mean Dice per region over all their cases pooled (each case weighs
the same), plus each site's own mean. Test and external scores also keep each case's Dice (``case_dice``:
``[site, case, WT, TC, ET]``) for the paired per-case test across modes; these stay in the simulation's own
output folder (one machine, synthetic or local data) and never enter a federation artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedseg.errors import DatasetError
from fedseg.federation.plan import Plan
from fedseg.labels import REGIONS
from fedseg.workflow.simulate.sites import Site

__all__ = ["ALL_SPLITS", "evaluate_weights", "mean_of_models"]

#: Every case of a dataset (:meth:`~fedseg.data.dataset.SiteDataset.split`): an external site took no part in
#: training, so all its splits are unseen.
ALL_SPLITS = "all"


def evaluate_weights(
    plan: Plan, weights: dict[str, np.ndarray], sites: Sequence[Site], split: str, device: str = "cpu",
    *, per_case: bool = False,
) -> dict[str, Any]:
    """Score ``weights`` on every site's ``split`` (or :data:`ALL_SPLITS`): per-site and pooled mean Dice.

    Scored as train-local validation scores them (:func:`fedseg.train.validate.validate`: windows of the
    training patch at the plan's ``val_overlap``, AMP on CUDA as the plan says), which is how ``fedseg
    evaluate`` scores at its default overlap (0.5, the plan's default ``val_overlap``); ``device`` is
    ``auto | cpu | cuda | cuda:N``. DatasetError when no site has a case in ``split``.
    """
    from fedseg.data.dataset import load_dataset
    from fedseg.inference.predict import PredictOptions
    from fedseg.inference.score import score_model
    from fedseg.inference.sources import reader_inputs
    from fedseg.model.spec import build_model

    model = build_model(plan.model, weights)
    options = PredictOptions(device=device, overlap=plan.training.val_overlap,
                             amp=plan.training.amp and device.startswith("cuda"))
    patch = plan.training.patch_size
    per_site: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for site in sites:
        dataset = load_dataset(site.root)
        records = dataset.split(split)
        if not records:
            continue
        scores = score_model(model, reader_inputs([dataset.reader(c) for c in records]),
                             patch_size=patch, options=options)
        per_site[site.id] = {"n": len(records), "dice": scores.mean_dice()}
        rows += [[site.id, c.case_id, *(c.metrics[r]["dice"] for r in REGIONS)] for c in scores.cases]
    if not rows:
        raise DatasetError(f"no site has cases in its {split!r} split to evaluate on")
    out: dict[str, Any] = {"dice": {r: float(np.mean([row[2 + k] for row in rows])) for k, r in enumerate(REGIONS)},
                           "sites": per_site, "cases": len(rows)}
    if per_case:
        out["case_dice"] = rows
    return out


def mean_of_models(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return the point of several models (``local``): Dice, and each case's Dice, averaged over the models."""
    out: dict[str, Any] = {"dice": {r: float(np.mean([p["dice"][r] for p in points])) for r in REGIONS},
                           "cases": points[0]["cases"]}
    if all("case_dice" in p for p in points):
        first = points[0]["case_dice"]
        out["case_dice"] = [[*row[:2], *(float(np.mean([p["case_dice"][i][2 + k] for p in points]))
                                         for k in range(len(REGIONS)))] for i, row in enumerate(first)]
    return out

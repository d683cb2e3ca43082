#!/usr/bin/env python
"""Golden lesion-wise numbers from the official BraTS evaluation code, for tests/metrics/test_lesionwise.py.

Run in a SEPARATE environment holding the reference packages (they pin numpy < 2.3 and rich < 14,
which fedseg's environment does not):

    python3 -m venv /work/wt/lesion-peer-venv
    /work/wt/lesion-peer-venv/bin/pip install brats-evaluation==0.0.10 panoptica==2.1.7
    /work/wt/lesion-peer-venv/bin/python scripts/lesion_goldens.py \
        --brats2023-repo PATH/TO/BraTS-2023-Metrics --out tests/metrics/lesion_goldens.json

``brats``: every case is written as two NIfTI files with SimpleITK and scored by
``Panoptica_Evaluator.load_from_config(<brats_evaluation>/configs/config_gli.yaml).evaluate(pred,
ref)``, exactly as ``brats_evaluation.evaluation.evaluate_single_exam`` does; we keep ``sq_dsc``,
``sq_hd95``, ``tp``, ``fp``, ``fn`` and the instance counts of the groups wt/tc/et.
``brats2023``: ``get_LesionWiseScores(pred, ref, region, 3)`` of the reference scripts
(rachitsaluja/BraTS-2023-Metrics, ``metrics.py`` at 43c9052, a checkout given by path; ``np.Inf``
shimmed for NumPy 2) and the aggregation of its ``get_LesionWiseResults`` (see that function below).

Cases are random ellipsoids (BraTS 2023 labels 1, 2, 3) described by their parameters, so the
fixture stays tiny; :func:`rasterize` turns a description into a label map on both sides.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

SHAPE = (40, 48, 44)  # [Z, Y, X]


def rasterize(shape: list[int], blobs: list[dict]) -> np.ndarray:
    """Paint ellipsoids ``{"label", "center", "radii"}`` (array order) in order into a uint8 map."""
    grid = np.indices(shape, dtype=np.float64)
    out = np.zeros(shape, np.uint8)
    for b in blobs:
        inside = sum(((grid[a] - b["center"][a]) / b["radii"][a]) ** 2 for a in range(3)) <= 1.0
        out[inside] = b["label"]
    return out


def _tumour(rng: np.random.Generator, center: np.ndarray, size: float) -> list[dict]:
    """One tumour: oedema ellipsoid, core, enhancing part (nested, a little off-centre)."""
    blobs = []
    for label, scale in ((2, 1.0), (1, 0.6), (3, 0.35)):
        c = center + rng.normal(0, size * 0.15, 3)
        r = np.maximum(size * scale * rng.uniform(0.7, 1.3, 3), 1.0)
        blobs.append({"label": label, "center": [round(float(v), 2) for v in c], "radii": [round(float(v), 2) for v in r]})
    return blobs


def make_case(rng: np.random.Generator) -> dict:
    """A reference with 1-4 tumours and a prediction made of perturbed, dropped and extra tumours."""
    lo, hi = np.array([6, 6, 6]), np.array(SHAPE) - 6
    ref, pred = [], []
    for _ in range(int(rng.integers(1, 5))):
        center, size = rng.uniform(lo, hi), float(rng.uniform(1.5, 7.0))
        ref += _tumour(rng, center, size)
        if rng.uniform() < 0.8:  # detected, with some error
            pred += _tumour(rng, center + rng.normal(0, 1.0, 3), size * rng.uniform(0.7, 1.2))
    for _ in range(int(rng.integers(0, 3))):  # false positives
        pred += _tumour(rng, rng.uniform(lo, hi), float(rng.uniform(1.0, 4.0)))
    spacing = [1.0, 1.0, 1.0] if rng.uniform() < 0.75 else [2.0, 1.0, 0.8]
    return {"shape": list(SHAPE), "spacing_zyx": spacing, "ref": ref, "pred": pred}


def _write(path: Path, arr: np.ndarray, spacing_zyx: list[float]) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    sitk.WriteImage(img, str(path))


def official_brats(pred: Path, ref: Path) -> dict:
    from importlib.resources import files

    from panoptica import Panoptica_Evaluator

    config = str(files("brats_evaluation").joinpath("configs", "config_gli.yaml"))
    results = Panoptica_Evaluator.load_from_config(config).evaluate(str(pred), str(ref))
    out = {}
    for group, region in (("wt", "WT"), ("tc", "TC"), ("et", "ET")):
        r = results[group].to_dict()
        out[region] = {
            "dice": r["sq_dsc"], "hd95": r["sq_hd95"], "matched": r["tp"], "fp": r["fp"], "missed": r["fn"],
            "gt_lesions": r["n_ref_instances"], "pred_lesions": r["n_pred_instances"],
        }
    return out


def reference_brats2023(pred: Path, ref: Path, repo: Path) -> dict:
    """Per-lesion numbers from the reference ``get_LesionWiseScores``; the aggregation of
    ``get_LesionWiseResults`` restated line by line (its ``DataFrame.replace`` on a column of arrays
    fails under pandas 2): drop lesions of <= 50 mm^3, inf -> 374, Dice = sum / (n + n_FP),
    HD95 = (sum + 374 n_FP) / (n + n_FP), NaN (0/0) -> Dice 1 and HD95 0."""
    np.Inf = np.inf  # removed in NumPy 2; the 2023 scripts use it
    sys.path.insert(0, str(repo))
    from metrics import get_LesionWiseScores

    out = {}
    for region in ("WT", "TC", "ET"):
        tp, fn, fp, gt_tp, pairs, *_ = get_LesionWiseScores(str(pred), str(ref), region, 3)
        kept = [(hits, dice, 374.0 if np.isinf(hd) else hd) for hits, _, vol, dice, hd in pairs if vol > 50]
        n = len(kept) + len(fp)
        out[region] = {
            "dice": sum(k[1] for k in kept) / n if n else 1.0,
            "hd95": (sum(k[2] for k in kept) + 374.0 * len(fp)) / n if n else 0.0,
            "matched": sum(1 for k in kept if len(k[0]) > 0),
            "fp": len(fp),
            "missed": sum(1 for k in kept if len(k[0]) == 0),
        }
    return out


def _clean(obj):
    if isinstance(obj, float) and not np.isfinite(obj):
        return "inf" if obj > 0 else "nan"
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return _clean(float(obj))
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--brats2023-repo", type=Path, required=True, help="checkout of BraTS-2023-Metrics")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cases = [make_case(rng) for _ in range(args.cases)]
    cases.append({"shape": list(SHAPE), "spacing_zyx": [1.0, 1.0, 1.0], "ref": [], "pred": cases[0]["pred"]})
    cases.append({"shape": list(SHAPE), "spacing_zyx": [1.0, 1.0, 1.0], "ref": cases[0]["ref"], "pred": []})
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases):
            pred_p, ref_p = Path(tmp) / f"pred-{i:05d}.nii.gz", Path(tmp) / f"ref-{i:05d}.nii.gz"
            _write(pred_p, rasterize(case["shape"], case["pred"]), case["spacing_zyx"])
            _write(ref_p, rasterize(case["shape"], case["ref"]), case["spacing_zyx"])
            case["brats"] = official_brats(pred_p, ref_p)
            case["brats2023"] = reference_brats2023(pred_p, ref_p, args.brats2023_repo)
    doc = {
        "made_by": "scripts/lesion_goldens.py",
        "versions": {"brats-evaluation": "0.0.10", "panoptica": "2.1.7", "BraTS-2023-Metrics": "43c9052"},
        "cases": [_clean(c) for c in cases],
    }
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Time the official lesion-wise evaluation on pairs saved by bench_evaluate.py (runs in the PEER venv).

Usage (bench_evaluate.py calls it): PEER_PYTHON scripts/_lesion_peer.py FOLDER [--brats2023-repo PATH]

FOLDER holds ``pairs.json`` ({"spacing_zyx": [...], "cases": ["case-000", ...]}) and
``<case>-pred.npy`` / ``<case>-ref.npy`` uint8 label maps [Z, Y, X] (BraTS 2023 labels). ``brats``:
the glioma config of brats-evaluation 0.0.10 loaded once, ``evaluate(pred, ref, voxelspacing=ITK
order, skip_groups=[snfh, netc, rc])`` on the arrays -- the spacing a NIfTI file read by panoptica
would carry; only the groups wt, tc, et that fedseg computes -- timed without file reading. ``brats2023`` (when a checkout is given): the reference ``get_LesionWiseScores`` for
WT, TC and ET on NIfTI files written first; that API reads the files itself, so its time includes
reading them three times. Writes FOLDER/peer.json (stdout carries panoptica's banner): seconds per
case and the metrics, per definition.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from lesion_goldens import _write, reference_brats2023  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--brats2023-repo", type=Path)
    args = ap.parse_args()
    meta = json.loads((args.folder / "pairs.json").read_text())
    spacing = meta["spacing_zyx"]
    from importlib.resources import files

    from panoptica import Panoptica_Evaluator

    evaluator = Panoptica_Evaluator.load_from_config(str(files("brats_evaluation").joinpath("configs", "config_gli.yaml")))
    out: dict = {"brats": {"seconds": [], "metrics": []}, "brats2023": {"seconds": [], "metrics": []}}
    for case in meta["cases"]:
        pred = np.load(args.folder / f"{case}-pred.npy", allow_pickle=False)  # plain arrays, never pickles
        ref = np.load(args.folder / f"{case}-ref.npy", allow_pickle=False)
        t0 = time.perf_counter()
        res = evaluator.evaluate(pred, ref, voxelspacing=tuple(reversed(spacing)), skip_groups=["snfh", "netc", "rc"])
        out["brats"]["seconds"].append(time.perf_counter() - t0)
        out["brats"]["metrics"].append(
            {g.upper(): {"dice": res[g].sq_dsc, "hd95": res[g].sq_hd95, "matched": res[g].tp} for g in ("wt", "tc", "et")}
        )
        if args.brats2023_repo is not None:
            pred_p, ref_p = args.folder / f"{case}-pred.nii.gz", args.folder / f"{case}-ref.nii.gz"
            _write(pred_p, pred, spacing)
            _write(ref_p, ref, spacing)
            t0 = time.perf_counter()
            metrics = reference_brats2023(pred_p, ref_p, args.brats2023_repo)
            out["brats2023"]["seconds"].append(time.perf_counter() - t0)
            out["brats2023"]["metrics"].append(metrics)
    (args.folder / "peer.json").write_text(json.dumps(out, default=float))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark per-case BraTS evaluation (3 regions; Dice, HD95, sensitivity, specificity, volumes).

Runs fedseg.metrics.case_metrics beside medpy (dc, hd95, sensitivity, specificity with voxelspacing)
and MONAI (compute_dice, compute_hausdorff_distance(percentile=95, spacing=...)) on the same
240x240x155 label maps in the same run, and prints seconds per case, ratios and the largest metric
differences as JSON on stdout.

Masks are "realistic": a smooth random tumour (oedema shell, necrotic core, enhancing rim) as a
reference, and a prediction made by perturbing its level sets with another smooth noise field plus a
few small false-positive islands.

Definitions: medpy pools both directed surface-distance sets before the 95th percentile, as fedseg
does, so HD95 should agree to ~1e-12 mm. MONAI takes the MAX of the two directed 95th percentiles
(and works in float32), a different definition; its numbers are compared against fedseg's
surface distances reduced the MONAI way ("hd95_directed_max").

Lesion-wise (BraTS 2023+): fedseg.metrics.lesionwise_case is timed on the same pairs (labels
turned into BraTS 2023 numbering, ET = 3, which the official glioma config expects), for both
definitions; with ``--peer-python PATH`` (a venv holding brats-evaluation 0.0.10 / panoptica 2.1.7)
the official package runs on the same arrays in the same run (scripts/_lesion_peer.py), and with
``--brats2023-repo PATH`` also the BraTS 2023 reference scripts; their numbers are compared too.

Example: .venv/bin/python scripts/bench_evaluate.py --cases 3 --peer-python /work/wt/lesion-peer-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from fedseg.metrics import REGIONS, LesionDefinition, case_metrics, label_to_regions, lesionwise_case
from fedseg.metrics.surface import bounding_box, surface_distances

SHAPE = (155, 240, 240)  # [Z, Y, X]


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Return zero-mean unit-variance smooth noise."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (f - f.mean()) / (f.std() + 1e-12)


def make_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (pred, ref) BraTS-2021-style label maps (ET = 4) on SHAPE."""
    box = (96, 112, 112)
    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in box), indexing="ij")
    radius = np.sqrt(zz**2 + yy**2 + xx**2)
    shape_noise = smooth_field(rng, box, 6.0)
    level = radius + 0.12 * shape_noise  # a lumpy ball
    pred_level = level + 0.05 * smooth_field(rng, box, 4.0) + rng.normal(0, 0.02)

    def labels(lv: np.ndarray) -> np.ndarray:
        lab = np.zeros(box, np.uint8)
        lab[lv < 0.75] = 2  # oedema (whole tumour)
        lab[lv < 0.45] = 4  # enhancing rim of the core
        lab[lv < 0.33] = 1  # necrotic centre
        return lab

    ref_box, pred_box = labels(level), labels(pred_level)
    islands = (smooth_field(rng, box, 2.0) > 3.2) & (pred_box == 0)
    pred_box[islands] = 2
    ref, pred = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    off = [int(rng.integers(10, s - b - 10)) for s, b in zip(SHAPE, box)]
    sl = tuple(slice(o, o + b) for o, b in zip(off, box))
    ref[sl], pred[sl] = ref_box, pred_box
    return pred, ref


def run_fedseg(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, dict[str, float]]:
    return case_metrics(pred, ref, spacing)


def run_medpy(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, dict[str, float]]:
    from medpy.metric import binary

    pr, rr = label_to_regions(pred, "brats2021"), label_to_regions(ref, "brats2021")
    out = {}
    for r in REGIONS:
        out[r] = {
            "dice": binary.dc(pr[r], rr[r]),
            "hd95": binary.hd95(pr[r], rr[r], voxelspacing=spacing),
            "sensitivity": binary.sensitivity(pr[r], rr[r]),
            "specificity": binary.specificity(pr[r], rr[r]),
            "pred_ml": float(pr[r].sum()) * float(np.prod(spacing)) / 1000,
            "ref_ml": float(rr[r].sum()) * float(np.prod(spacing)) / 1000,
        }
    return out


def run_monai(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, dict[str, float]]:
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    pr, rr = label_to_regions(pred, "brats2021"), label_to_regions(ref, "brats2021")
    p = torch.from_numpy(np.stack([pr[r] for r in REGIONS])[None]).float()
    t = torch.from_numpy(np.stack([rr[r] for r in REGIONS])[None]).float()
    d = compute_dice(p, t, include_background=True)
    h = compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=list(spacing))
    return {r: {"dice": float(d[0, i]), "hd95": float(h[0, i])} for i, r in enumerate(REGIONS)}


def hd95_directed_max(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """fedseg's surface distances reduced as MONAI does: max of the two directed 95th percentiles."""
    pr, rr = label_to_regions(pred, "brats2021"), label_to_regions(ref, "brats2021")
    out = {}
    for r in REGIONS:
        box = bounding_box(pr[r] | rr[r], margin=1)
        a, b = surface_distances(pr[r][box], rr[r][box], spacing)
        out[r] = float(max(np.percentile(a, 95), np.percentile(b, 95)))
    return out


def timed(fn, *args, repeat: int) -> tuple[float, object]:
    best, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        best.append(time.perf_counter() - t0)
    return min(best), result


def bench_lesionwise(pairs: list, spacing: tuple[float, ...], args: argparse.Namespace) -> dict:
    """Time lesion-wise metrics (both definitions) and, if given, the official code on the same pairs."""
    pairs = [(np.where(p == 4, 3, p), np.where(r == 4, 3, r)) for p, r in pairs]  # BraTS 2023 labels
    times: dict[str, list[float]] = {d.value: [] for d in LesionDefinition}
    ours: dict[str, list] = {d.value: [] for d in LesionDefinition}
    for pred, ref in pairs:
        for d in LesionDefinition:
            t, res = timed(lambda p, r, d=d: lesionwise_case(p, r, spacing, definition=d), pred, ref, repeat=args.repeat)
            times[d.value].append(t)
            ours[d.value].append(res)
    out: dict = {"seconds_per_case_median": {f"fedseg_{k}": round(statistics.median(v), 4) for k, v in times.items()}}
    if args.peer_python is None:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"case-{i:03d}" for i in range(len(pairs))]
        for name, (pred, ref) in zip(names, pairs):
            np.save(Path(tmp) / f"{name}-pred.npy", pred)
            np.save(Path(tmp) / f"{name}-ref.npy", ref)
        (Path(tmp) / "pairs.json").write_text(json.dumps({"spacing_zyx": list(spacing), "cases": names}))
        cmd = [args.peer_python, str(Path(__file__).with_name("_lesion_peer.py")), tmp]
        if args.brats2023_repo:
            cmd += ["--brats2023-repo", args.brats2023_repo]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        peer = json.loads((Path(tmp) / "peer.json").read_text())
    for ours_key, peer_key in (("brats", "brats"), ("brats2023", "brats2023")):
        if not peer[peer_key]["seconds"]:
            continue
        label = "official_brats" if peer_key == "brats" else "reference_brats2023"
        out["seconds_per_case_median"][label] = round(statistics.median(peer[peer_key]["seconds"]), 4)
        out[f"speedup_vs_{label}"] = round(statistics.median(peer[peer_key]["seconds"]) / statistics.median(times[ours_key]), 1)
        for metric in ("dice", "hd95", "matched"):
            diffs = [abs(float(o[r][metric]) - float(m[r][metric])) for o, m in zip(ours[ours_key], peer[peer_key]["metrics"])
                     for r in REGIONS if np.isfinite(float(m[r][metric])) and np.isfinite(float(o[r][metric]))]
            out.setdefault("max_abs_diff", {})[f"{ours_key}_{metric}"] = float(f"{max(diffs, default=0.0):.3g}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="fedseg repeats per case (min taken); peers run once")
    ap.add_argument("--spacing", type=float, nargs=3, default=(1.0, 1.0, 1.0), help="array order (sz sy sx)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer-python", help="python of a venv with brats-evaluation 0.0.10 (times the official package)")
    ap.add_argument("--brats2023-repo", help="checkout of BraTS-2023-Metrics (with --peer-python: times it too)")
    args = ap.parse_args()
    spacing = tuple(args.spacing)

    try:
        import torch

        torch.set_num_threads(1)  # a shared 2-core machine; scipy's EDT is single-threaded too
    except ImportError:
        torch = None

    rng = np.random.default_rng(args.seed)
    times: dict[str, list[float]] = {"fedseg": [], "medpy": [], "monai": []}
    diffs = {"medpy_dice": 0.0, "medpy_hd95": 0.0, "medpy_sens": 0.0, "medpy_spec": 0.0, "monai_dice": 0.0,
             "monai_hd95_vs_fedseg_pooled": 0.0, "monai_hd95_vs_fedseg_directed_max": 0.0}
    available = {"medpy": True, "monai": torch is not None}
    example = None
    pairs = []
    for _ in range(args.cases):
        pred, ref = make_case(rng)
        pairs.append((pred, ref))
        t, ours = timed(run_fedseg, pred, ref, spacing, repeat=args.repeat)
        times["fedseg"].append(t)
        example = example or {r: {k: round(v, 4) for k, v in ours[r].items()} for r in REGIONS}
        if available["medpy"]:
            try:
                t, mp = timed(run_medpy, pred, ref, spacing, repeat=1)
            except ImportError:
                available["medpy"] = False
            else:
                times["medpy"].append(t)
                for r in REGIONS:
                    diffs["medpy_dice"] = max(diffs["medpy_dice"], abs(ours[r]["dice"] - mp[r]["dice"]))
                    diffs["medpy_hd95"] = max(diffs["medpy_hd95"], abs(ours[r]["hd95"] - mp[r]["hd95"]))
                    diffs["medpy_sens"] = max(diffs["medpy_sens"], abs(ours[r]["sensitivity"] - mp[r]["sensitivity"]))
                    diffs["medpy_spec"] = max(diffs["medpy_spec"], abs(ours[r]["specificity"] - mp[r]["specificity"]))
        if available["monai"]:
            try:
                t, mo = timed(run_monai, pred, ref, spacing, repeat=1)
            except ImportError:
                available["monai"] = False
            else:
                times["monai"].append(t)
                dm = hd95_directed_max(pred, ref, spacing)
                for r in REGIONS:
                    diffs["monai_dice"] = max(diffs["monai_dice"], abs(ours[r]["dice"] - mo[r]["dice"]))
                    diffs["monai_hd95_vs_fedseg_pooled"] = max(diffs["monai_hd95_vs_fedseg_pooled"], abs(ours[r]["hd95"] - mo[r]["hd95"]))
                    diffs["monai_hd95_vs_fedseg_directed_max"] = max(diffs["monai_hd95_vs_fedseg_directed_max"], abs(dm[r] - mo[r]["hd95"]))

    per_case = {k: statistics.median(v) for k, v in times.items() if v}
    peers = [per_case[k] for k in ("medpy", "monai") if k in per_case]
    report = {
        "benchmark": "evaluate",
        "shape_zyx": list(SHAPE),
        "spacing_zyx": list(spacing),
        "cases": args.cases,
        "seconds_per_case_median": {k: round(v, 4) for k, v in per_case.items()},
        "speedup_vs": {k: round(per_case[k] / per_case["fedseg"], 1) for k in ("medpy", "monai") if k in per_case},
        "speedup_vs_fastest_peer": round(min(peers) / per_case["fedseg"], 1) if peers else None,
        "max_abs_diff": {k: float(f"{v:.3g}") for k, v in diffs.items()},
        "example_case_metrics": example,
        "lesionwise": bench_lesionwise(pairs, spacing, args),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "notes": "medpy: same pooled HD95 definition; MONAI: max of directed 95th percentiles in float32, "
        "compared with fedseg's distances reduced the same way. Peers run once per case, fedseg min of --repeat.",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

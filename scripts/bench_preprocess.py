"""Benchmark `fedseg preprocess`: seconds per synthetic raw case by step, --jobs 1 vs 2, and the shared steps vs peers.

Cases: synthetic heads with skull from ``fedseg.synth`` (default size), written as BraTS 2021 raw files:

* ``misaligned``: site profile 1 (0.9x0.9x3 mm RAS, FLAIR on its own 1.2 mm grid, up to 5 mm / 5 deg
  misalignment), so rigid registration runs for three modalities;
* ``coregistered``: the same acquisition with every modality on the T1ce grid (no registration).

Each set is preprocessed with the library call behind the CLI (``build_dataset``) at default settings
(1 mm, skull strip auto, no N4) with ``--jobs 1`` and ``--jobs 2``; seconds per case = wall / cases.
Step times are the per-case means measured inside the pipeline.

Shared steps (load, reorient, resample to 1 mm, z-score inside the brain with 0 outside, crop to the brain
box, save) on the same co-registered case, done by fedseg, MONAI and TorchIO (when installed), all using
the synthetic ground-truth brain mask so the work is identical: the ratio ``fedseg / fastest peer`` is
reported (target <= 1). fedseg saves its HDF5 case file; the peers save their NIfTI files.

Registration accuracy (``--reg-seeds N``, default 2): thick-slice synthetic cases (T2 at 1x1x5 mm, FLAIR at
0.7x0.7x6 mm, T1 sagittal, <= 3 mm / 3 deg motion), the rotation and translation errors of each registration
against the known motion, with its seconds (wall and CPU).

Optionally (``--roundtrip``) the WT Dice of label -> preprocess -> ``to_original_grid`` at 1, 2 and 3 mm.
Prints one JSON object. Usage: python scripts/bench_preprocess.py [--cases 2] [--size-scale 1.0] [--reg-seeds 2] [--roundtrip]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.data.discovery import discover
from fedseg.labels import MODALITIES, Layout
from fedseg.synth import PROFILES, make_case, write_case
from fedseg.workflow.preprocess.build import build_dataset

STEPS = ("load", "reorient", "resample", "zscore", "crop", "save")
#: The pipeline's own step timings (fedseg.workflow.preprocess.case), in pipeline order.
PIPELINE_STEPS = ("read", "reorient", "register", "resample", "skullstrip", "n4", "normalize", "crop", "save", "qc")


def write_set(root: Path, kind: str, cases: int, scale: float, seed: int) -> Path:
    """Write ``cases`` raw cases of profile 1, misaligned or co-registered on the T1ce grid."""
    profile = PROFILES[1]
    if kind == "coregistered":
        t1ce = profile.grids["t1ce"]
        profile = dataclasses.replace(profile, name="axial-ras-coreg", misalign_mm=0.0, misalign_deg=0.0,
                                      grids={m: t1ce for m in MODALITIES})
    for i in range(cases):
        case = make_case(np.random.default_rng([seed, 1, i]), profile, case_id=f"{kind[:5].upper()}_{i:03d}",
                         size_scale=scale)
        write_case(case, root, Layout.BRATS2021, profile_index=1, seed=seed)
    return root


def run_build(raw: Path, out: Path, jobs: int) -> dict[str, Any]:
    start = time.perf_counter()
    report = build_dataset(raw, out, PreprocessConfig(), jobs=jobs, force=True)
    wall = time.perf_counter() - start
    done = [o for o in report.outcomes if o.status == "done"]
    steps: dict[str, float] = {}
    for o in done:
        for k, v in o.timings.items():
            steps[k] = steps.get(k, 0.0) + v / len(done)
    return {
        "jobs": jobs, "cases": len(report.outcomes), "failed": len(report.failed), "wall_s": round(wall, 2),
        "seconds_per_case": round(wall / max(1, len(report.outcomes)), 2),
        "step_means_s": {k: round(steps[k], 3) for k in (*PIPELINE_STEPS, *sorted(set(steps) - set(PIPELINE_STEPS)))
                         if k in steps},
        "case_seconds": [round(o.seconds, 2) for o in report.outcomes],
        "skull_strip": sorted({str(o.record.qc.get("skull_strip")) for o in done if o.record}),
        "warnings": sorted({w for o in done if o.record for w in o.record.warnings}),
    }


class Clock:
    """Time named steps."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - start
        return out

    def result(self) -> dict[str, float]:
        out = {k: round(self.t.get(k, 0.0), 3) for k in STEPS}
        out["total"] = round(sum(self.t.values()), 3)
        return out


def shared_fedseg(files: dict[str, Path], out: Path) -> dict[str, float]:
    import SimpleITK as sitk

    from fedseg.data.dataset import write_case
    from fedseg.geometry import CaseGeometry
    from fedseg.imaging.checked_read import read_checked as _read_checked
    from fedseg.imaging.crop import apply_box, bounding_box
    from fedseg.imaging.io import read_image
    from fedseg.imaging.normalize import zscore_in_mask
    from fedseg.imaging.orient import to_canonical
    from fedseg.imaging.resample import reference_grid, resample_to_spacing

    c = Clock()
    imgs = c.run("load", lambda: {m: _read_checked(files[m], m) for m in MODALITIES})
    mask = c.run("load", lambda: read_image(files["mask"]))
    canon = c.run("reorient", lambda: {m: to_canonical(i) for m, i in imgs.items()})
    mask_c = c.run("reorient", lambda: to_canonical(mask))

    def resample():
        ref = reference_grid(canon["t1ce"], (1.0, 1.0, 1.0))
        arrays = {m: sitk.GetArrayFromImage(resample_to_spacing(i, None, reference=ref)) for m, i in canon.items()}
        return ref, arrays, sitk.GetArrayFromImage(resample_to_spacing(mask_c, None, interpolator="nearest",
                                                                       reference=ref)) > 0
    ref, arrays, brain = c.run("resample", resample)
    stacked = c.run("zscore", lambda: np.stack([zscore_in_mask(arrays[m], brain) for m in MODALITIES]))
    box = c.run("crop", lambda: bounding_box(brain, 4))
    image = c.run("crop", lambda: np.ascontiguousarray(apply_box(stacked, box)))
    geometry = CaseGeometry(ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection(), box, ref.GetSize(),
                            ref.GetSize(), ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection())
    c.run("save", lambda: write_case(out / "case.h5", case_id="x", image=image,
                                     brain_mask=np.ascontiguousarray(apply_box(brain, box)), geometry=geometry))
    return c.result()


def shared_monai(files: dict[str, Path], out: Path) -> dict[str, float]:
    from monai.transforms import (
        CropForegroundd,
        EnsureChannelFirstd,
        LoadImaged,
        MaskIntensityd,
        NormalizeIntensityd,
        Orientationd,
        SaveImaged,
        Spacingd,
    )

    keys = list(MODALITIES)
    every = [*keys, "mask"]
    c = Clock()
    data: Any = {k: str(files[k]) for k in every}
    data = c.run("load", lambda: EnsureChannelFirstd(every)(LoadImaged(every)(data)))
    data = c.run("reorient", lambda: Orientationd(every, axcodes="RAS")(data))
    data = c.run("resample", lambda: Spacingd(every, pixdim=(1.0, 1.0, 1.0),
                                              mode=["bilinear"] * len(keys) + ["nearest"])(data))

    def zscore(d):
        d = MaskIntensityd(keys, mask_key="mask")(d)
        return NormalizeIntensityd(keys, nonzero=True, channel_wise=True)(d)
    data = c.run("zscore", lambda: zscore(data))
    data = c.run("crop", lambda: CropForegroundd(every, source_key="mask", margin=4)(data))
    saver = SaveImaged(every, output_dir=str(out), output_postfix="pre", separate_folder=False, resample=False,
                       print_log=False)
    c.run("save", lambda: saver(data))
    return c.result()


def shared_torchio(files: dict[str, Path], out: Path) -> dict[str, float]:
    import torchio as tio

    c = Clock()
    subject = tio.Subject(**{m: tio.ScalarImage(files[m]) for m in MODALITIES}, mask=tio.LabelMap(files["mask"]))
    c.run("load", subject.load)
    subject = c.run("reorient", lambda: tio.ToCanonical()(subject))
    subject = c.run("resample", lambda: tio.Resample(1.0)(subject))
    subject = c.run("zscore", lambda: tio.Mask(masking_method="mask")(tio.ZNormalization(masking_method="mask")(subject)))
    subject = c.run("crop", lambda: tio.CropOrPad(mask_name="mask")(subject))

    def save():
        for name, image in subject.get_images_dict(intensity_only=False).items():
            image.save(out / f"{name}.nii.gz")
    c.run("save", save)
    return c.result()


def shared_steps(raw: Path, work: Path) -> dict[str, Any]:
    case = discover(raw).cases[0]
    files: dict[str, Path] = {**case.images, "mask": case.images["t1ce"].parent / f"{case.id}_brainmask.nii.gz"}
    runners: dict[str, Callable[[dict[str, Path], Path], dict[str, float]]] = {"fedseg": shared_fedseg}
    results: dict[str, Any] = {}
    for name, fn in (("monai", shared_monai), ("torchio", shared_torchio)):
        if importlib.util.find_spec(name):
            runners[name] = fn
        else:
            results.setdefault("peers_not_installed", []).append(name)
    for name, fn in runners.items():
        fn(files, Path(tempfile.mkdtemp(dir=work)))  # warm-up: imports, file cache
        results[name] = fn(files, Path(tempfile.mkdtemp(dir=work)))
    peers = {k: v["total"] for k, v in results.items() if k in ("monai", "torchio")}
    if not peers:
        results["note"] = "no peer installed (pip install monai torchio): fedseg's shared steps only"
    else:
        fastest = min(peers, key=lambda k: peers[k])
        results["fastest_peer"] = fastest
        results["ratio_fedseg_vs_fastest_peer"] = round(results["fedseg"]["total"] / peers[fastest], 3)
        results["ratio_per_step_vs_fastest_peer"] = {
            s: round(results["fedseg"][s] / max(1e-6, results[fastest][s]), 3) for s in STEPS}
    return results


def round_trip(work: Path, scale: float) -> dict[str, Any]:
    """WT Dice of the original label vs label -> preprocess -> to_original_grid, per profile and spacing."""
    import SimpleITK as sitk

    from fedseg.imaging.inverse import to_original_grid
    from fedseg.imaging.io import read_image
    from fedseg.synth import write_cases
    from fedseg.workflow.preprocess.case import preprocess_case

    out: dict[str, Any] = {}
    for profile in (0, 1, 2):
        raw = work / f"rt{profile}"
        write_cases(raw, cases=1, profile=profile, size_scale=scale, seed=11)
        case = discover(raw).cases[0]
        truth = sitk.GetArrayFromImage(read_image(case.seg)) > 0
        for mm in (1.0, 2.0, 3.0):
            r = preprocess_case(case, PreprocessConfig(spacing=(mm, mm, mm), register=False))
            back = sitk.GetArrayFromImage(to_original_grid(r.label, r.geometry)) > 0
            out[f"profile{profile}_{mm:g}mm"] = round(float(2 * np.sum(back & truth) / (back.sum() + truth.sum())), 4)
    return out


def thick_slice_profile() -> Any:
    """Profile 1 with a sagittal 1 mm T1, a 1 mm T1ce, a 1x1x5 mm T2 and a 0.7x0.7x6 mm FLAIR, <= 3 mm / 3 deg apart."""
    from fedseg.synth.profiles import RAS, SAGITTAL, GridSpec

    return dataclasses.replace(PROFILES[1], name="thick-slices", misalign_mm=3.0, misalign_deg=3.0, grids={
        "t1": GridSpec((1.0, 1.0, 1.0), (176.0, 216.0, 176.0), SAGITTAL),
        "t1ce": GridSpec((1.0, 1.0, 1.0), (176.0, 216.0, 176.0), RAS),
        "t2": GridSpec((1.0, 1.0, 5.0), (216.0, 216.0, 160.0), RAS),
        "flair": GridSpec((0.7, 0.7, 6.0), (216.0, 216.0, 160.0), RAS)})


def registration_accuracy(seeds: int, scale: float, anatomy: str = "simple") -> dict[str, Any]:
    """Angle (deg) and translation (mm, at the head centre) errors of each registration against the synth truth.

    ``anatomy``: the profile's simple phantom head, or ``realistic`` (scalp fat, muscle, orbits, neck, partial volume).
    """
    from fedseg.imaging.orient import to_canonical
    from fedseg.imaging.register import register_rigid, rotation_angle_deg
    from fedseg.synth import motion_transform

    rows = []
    for seed in range(seeds):
        case = make_case(np.random.default_rng([7, seed]), thick_slice_profile().with_head(anatomy), case_id=f"R{seed}",
                         size_scale=scale)
        fixed = to_canonical(case.images["t1ce"])
        for m in ("t1", "t2", "flair"):
            truth = motion_transform(case.misalignment[m])
            wall, cpu = time.perf_counter(), time.process_time()
            result = register_rigid(fixed, to_canonical(case.images[m]), seed=0)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            r_est = np.asarray(result.transform.GetMatrix()).reshape(3, 3)
            r_true = np.asarray(truth.GetMatrix()).reshape(3, 3)
            shift = np.subtract(result.transform.TransformPoint((0.0, 0.0, 0.0)), truth.TransformPoint((0.0, 0.0, 0.0)))
            rows.append({"seed": seed, "modality": m, "spacing": list(case.images[m].GetSpacing()),
                         "angle_error_deg": round(rotation_angle_deg(r_est @ r_true.T), 3),
                         "translation_error_mm": round(float(np.linalg.norm(shift)), 3),
                         "truth_deg": round(rotation_angle_deg(r_true), 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
    return {"profile": "t1ce 1 mm; t1 1 mm sagittal; t2 1x1x5 mm; flair 0.7x0.7x6 mm; <= 3 mm / 3 deg motion",
            "size_scale": scale, "anatomy": anatomy, "max_angle_error_deg": max(r["angle_error_deg"] for r in rows),
            "max_translation_error_mm": max(r["translation_error_mm"] for r in rows),
            "mean_cpu_s": round(float(np.mean([r["cpu_s"] for r in rows])), 2),
            "targets": {"angle_deg": 1.0, "translation_mm": 0.5}, "runs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2, help="cases per set (default 2)")
    parser.add_argument("--size-scale", type=float, default=1.0, help="synthetic head size (1.0 = adult)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", default="coregistered,misaligned", help="which case sets to time")
    parser.add_argument("--jobs", default="1,2", help="job counts to time")
    parser.add_argument("--roundtrip", action="store_true", help="also report round-trip WT Dice at 1/2/3 mm")
    parser.add_argument("--no-peers", action="store_true", help="skip the shared-steps comparison")
    parser.add_argument("--reg-seeds", type=int, default=2, help="thick-slice cases for the registration accuracy "
                                                                  "(0: skip)")
    args = parser.parse_args()

    import signal

    import torch

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a timeout ends the run like Ctrl-C
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="fedseg-bench-preprocess-"))
    result: dict[str, Any] = {
        "benchmark": "preprocess", "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
        "size_scale": args.size_scale, "settings": "spacing 1 mm, skull strip auto, no N4, float16",
        "targets": {"seconds_per_case_2_cores": 15.0, "shared_steps_ratio_vs_fastest_peer": 1.0},
    }
    try:
        sets = {}
        for kind in args.sets.split(","):
            raw = write_set(work / f"raw-{kind}", kind, args.cases, args.size_scale, args.seed)
            sets[kind] = raw
            result[kind] = {f"jobs{j}": run_build(raw, work / f"out-{kind}-{j}", int(j)) for j in args.jobs.split(",")}
        if not args.no_peers:
            raw = sets.get("coregistered") or write_set(work / "raw-coregistered", "coregistered", 1,
                                                       args.size_scale, args.seed)
            result["shared_steps_s"] = shared_steps(raw, work)
        if args.reg_seeds:
            result["registration_accuracy"] = {a: registration_accuracy(args.reg_seeds, args.size_scale, a)
                                               for a in ("simple", "realistic")}
        if args.roundtrip:
            result["round_trip_wt_dice"] = round_trip(work, min(args.size_scale, 0.5))
    except KeyboardInterrupt:  # Ctrl-C or a timeout's SIGTERM: what was measured so far is still printed
        result["interrupted"] = True
    finally:
        result["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
        shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

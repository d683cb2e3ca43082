#!/usr/bin/env python
"""Benchmark local training throughput on the CPU; print JSON.

fedseg's default U-Net (the plan's default ``[model]``) trained through the real pipeline: patches read
from per-case HDF5 files (foreground oversampling, flips, intensity augmentation), soft Dice + BCE,
AdamW. In the same run, MONAI's ``DynUNet`` (nnU-Net-like, same stages/widths/instance norm, so a
similar parameter count) does the same optimizer step on batches held in memory. Reported per patch
size (batch 2): patches/s, voxels/s, parameters, patches/s per million parameters, the ratio of that to
MONAI's, and the share of step time spent waiting for data (in-process loading, and with one loader
worker). Timed steps follow warm-up steps; the numbers are wall-clock on whatever the machine is doing.

Usage: scripts/bench_train.py [--sizes 64,96] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads wreck shared CPUs


def make_cases(root: Path, n: int, shape: tuple[int, int, int]) -> list:
    """Write ``n`` BraTS-sized phantom cases (float16, chunked, gzip) and return their CaseIndex."""
    import numpy as np

    from fedseg.data.dataset import CaseReader, write_case
    from fedseg.geometry import CaseGeometry
    from fedseg.train.sampling import index_case

    rng = np.random.default_rng(0)
    eye = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    geometry = CaseGeometry((1.0,) * 3, (0.0,) * 3, eye, (0, shape[0], 0, shape[1], 0, shape[2]), shape[::-1],
                            shape[::-1], (1.0,) * 3, (0.0,) * 3, eye)
    zz, yy, xx = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    out = []
    for i in range(n):
        c = [rng.uniform(0.35, 0.65) * s for s in shape]
        d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
        label = np.zeros(shape, np.uint8)
        label[d < 25] = 2
        label[d < 15] = 3
        label[d < 8] = 1
        image = rng.normal(0, 1, size=(4, *shape)).astype(np.float32) + label[None] * 0.5
        path = root / f"case{i}.h5"
        write_case(path, case_id=f"case{i}", image=image, brain_mask=np.ones(shape, np.uint8), geometry=geometry,
                   label=label, dtype="float16")
        out.append(index_case(CaseReader(path), rng))
    return out


def bench_fedseg(cases: list, patch: int, steps: int, warmup: int, workers: int) -> dict:
    import torch

    from fedseg.configs.model import ModelConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.model.spec import build_model
    from fedseg.train.loop import train

    config = TrainingConfig(patch_size=(patch,) * 3, batch_size=2, amp=False, num_workers=workers)
    model = build_model(ModelConfig())
    timings: list[float] = []
    waits: list[float] = []
    last = [time.perf_counter()]

    def progress(info) -> None:  # noqa: ANN001
        now = time.perf_counter()
        timings.append(now - last[0])
        last[0] = now

    outcome = train(model, cases, config, total_steps=warmup + steps, device=torch.device("cpu"), progress=progress)
    waits.append(outcome.data_wait_seconds)
    step_s = sum(timings[warmup:]) / steps
    params = sum(p.numel() for p in model.parameters())
    return {"step_s": step_s, "patches_per_s": 2 / step_s, "voxels_per_s": 2 * patch**3 / step_s,
            "params": params, "data_wait_share": outcome.data_wait_seconds / outcome.seconds, "workers": workers}


def bench_monai(patch: int, steps: int, warmup: int) -> dict | None:
    try:
        from monai.networks.nets import DynUNet
    except ImportError:
        return None
    import torch

    from fedseg.train.losses import dice_bce_loss

    torch.manual_seed(0)
    model = DynUNet(spatial_dims=3, in_channels=4, out_channels=3, kernel_size=[3] * 5,
                    strides=[1, 2, 2, 2, 2], upsample_kernel_size=[2, 2, 2, 2], filters=[16, 32, 64, 128, 256],
                    norm_name="instance", res_block=False, deep_supervision=False)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    x = torch.randn(2, 4, patch, patch, patch)
    y = torch.randint(0, 4, (2, patch, patch, patch), dtype=torch.uint8)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = dice_bce_loss(model(x), y)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    params = sum(p.numel() for p in model.parameters())
    return {"step_s": step_s, "patches_per_s": 2 / step_s, "voxels_per_s": 2 * patch**3 / step_s, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,96")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case-shape", default="128,144,128")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.case_shape.split(","))
    results: dict = {"threads": args.threads, "case_shape": list(shape), "batch_size": 2, "torch": torch.__version__,
                     "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cases = make_cases(Path(tmp), 2, shape)  # type: ignore[arg-type]
        results["dataset_write_s"] = time.perf_counter() - t0
        for size in (int(s) for s in args.sizes.split(",")):
            ours = bench_fedseg(cases, size, args.steps, args.warmup, workers=0)
            ours_w = bench_fedseg(cases, size, args.steps, args.warmup, workers=1)
            monai = bench_monai(size, args.steps, args.warmup)
            entry = {"fedseg": ours, "fedseg_1_worker": ours_w, "monai_dynunet": monai}
            if monai:
                per_param = ours["patches_per_s"] / ours["params"]
                entry["throughput_per_param_vs_monai"] = per_param / (monai["patches_per_s"] / monai["params"])
            results["sizes"][str(size)] = entry
            print(json.dumps({str(size): entry}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

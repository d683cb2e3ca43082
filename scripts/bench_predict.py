#!/usr/bin/env python
"""Benchmark sliding-window prediction of one volume on CPU: fedseg vs MONAI, same network and input.

Each measurement runs in its own child process so its peak RSS (``ru_maxrss``) is its own. The network
is the default :class:`~fedseg.configs.model.ModelConfig` U-Net with the default training patch; both
implementations blend with a Gaussian (sigma 1/8 of the window) at the same overlap and batch of windows.

Usage:
    python scripts/bench_predict.py                       # 240x240x155, fedseg, fedseg+mirror, MONAI
    python scripts/bench_predict.py --shape 96 128 128 --repeats 2 --threads 1

Prints one JSON object: seconds per case (minimum over repeats), split into time inside the network and
the tiling/blending overhead around it, peak RSS in MiB, and the ratios fedseg / MONAI and mirrored / plain.
On a shared machine the wall-time ratio is noisy (the network dominates and other load slows it at
random); the overhead ratio compares what actually differs between the implementations.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(method: str, shape: list[int], threads: int, overlap: float, batch: int, patch: list[int]) -> dict:
    import numpy as np
    import torch

    from fedseg.configs.model import ModelConfig
    from fedseg.inference.sliding_window import sliding_window_predict
    from fedseg.model.spec import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_model(ModelConfig()).eval()
    forward_seconds = [0.0]

    class Timed(torch.nn.Module):
        """The network, timing its forward passes: the rest of the wall time is the tiling overhead."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = time.perf_counter()
            out = self.net(x)
            forward_seconds[0] += time.perf_counter() - t
            return out

    model = Timed().eval()
    image = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)
    if method == "monai":
        from monai.inferers import sliding_window_inference  # imported before the clock starts
    t0 = time.perf_counter()
    if method in ("fedseg", "fedseg_mirror"):
        probs = sliding_window_predict(model, image, patch_size=tuple(patch), overlap=overlap, batch_size=batch,
                                       mirror=method == "fedseg_mirror")
    else:
        with torch.inference_mode():
            logits = sliding_window_inference(torch.from_numpy(image)[None], roi_size=tuple(patch),
                                              sw_batch_size=batch, predictor=model, overlap=overlap,
                                              mode="gaussian", sigma_scale=0.125)
            probs = torch.sigmoid(logits)[0].numpy()
    seconds = time.perf_counter() - t0
    assert probs.shape == (3, *shape)
    return {"seconds": round(seconds, 2), "network_seconds": round(forward_seconds[0], 2),
            "overhead_seconds": round(seconds - forward_seconds[0], 2), "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[155, 240, 240], help="volume Z Y X")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per method, interleaved; the minimum is reported")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--skip-mirror", action="store_true")
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from fedseg.configs.training import TrainingConfig

    patch = list(TrainingConfig().patch_size)
    if args.child:
        print(json.dumps(_child(args.child, args.shape, args.threads, args.overlap, args.batch, patch)))
        return
    methods = ["fedseg"] + ([] if args.skip_mirror else ["fedseg_mirror"]) + ([] if args.skip_monai else ["monai"])
    result: dict = {"shape_zyx": args.shape, "patch_zyx": patch, "overlap": args.overlap, "batch": args.batch,
                    "threads": args.threads, "model": "ModelConfig() default", "device": "cpu"}
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for _ in range(max(1, args.repeats)):
        for method in methods:  # interleaved, so a burst of load on the shared machine hits both sides
            cmd = [sys.executable, __file__, "--child", method, "--shape", *map(str, args.shape), "--threads",
                   str(args.threads), "--overlap", str(args.overlap), "--batch", str(args.batch)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{method}: {runs[method][-1]}", file=sys.stderr)
    for method, rows in runs.items():
        best = min(rows, key=lambda r: r["seconds"])
        result[method] = dict(best, peak_rss_mib=max(r["peak_rss_mib"] for r in rows),
                              all_seconds=[r["seconds"] for r in rows])
    if "monai" in result:
        result["ratio_fedseg_over_monai"] = round(result["fedseg"]["seconds"] / result["monai"]["seconds"], 3)
        # the network does identical work on both sides; the tiling overhead is what differs, and it is
        # far less sensitive to other load on a shared machine than the wall time
        result["overhead_fedseg_over_monai"] = round(result["fedseg"]["overhead_seconds"]
                                                     / max(result["monai"]["overhead_seconds"], 1e-9), 3)
    if "fedseg_mirror" in result:
        result["ratio_mirror_over_plain"] = round(result["fedseg_mirror"]["seconds"] / result["fedseg"]["seconds"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

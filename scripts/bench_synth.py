"""Benchmark `fedseg synth`: seconds to make (and to write) one case per profile and size scale; prints JSON.

No peer library generates multi-modal head phantoms with tumours, so there is no ratio to print.
Usage: python scripts/bench_synth.py [--repeats N] [--scales 1.0,0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scales", default="1.0,0.5")
    args = parser.parse_args()

    import SimpleITK as sitk

    from fedseg.labels import Layout
    from fedseg.synth import PROFILES, make_case, write_case

    make_case(np.random.default_rng(0), PROFILES[0], case_id="warm", size_scale=0.2)  # imports, caches
    results = []
    for scale in (float(s) for s in args.scales.split(",")):
        for index, profile in PROFILES.items():
            make_wall, make_cpu, write_wall = [], [], []
            for r in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                case = make_case(np.random.default_rng([r, index]), profile, case_id=f"b{r}", size_scale=scale)
                make_wall.append(time.perf_counter() - t0)
                make_cpu.append(time.process_time() - c0)
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    write_case(case, Path(tmp), Layout.BRATS2021)
                    write_wall.append(time.perf_counter() - t0)
            voxels = int(sum(np.prod(img.GetSize()) for img in case.images.values()))
            results.append(
                {
                    "profile": index,
                    "size_scale": scale,
                    "make_s_median": round(statistics.median(make_wall), 3),
                    "make_cpu_s_median": round(statistics.median(make_cpu), 3),
                    "write_s_median": round(statistics.median(write_wall), 3),
                    "voxels_4_modalities": voxels,
                }
            )
    print(
        json.dumps(
            {
                "stage": "synth",
                "repeats": args.repeats,
                "sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Time one round of `fedseg simulate` per mode on given site datasets; print JSON.

Measures the wall time of the shared round-0 evaluation and of round 1 of each mode (training plus the
scoring the round needs, not the final test scoring), from the simulation's own progress messages. Runs through the public
``fedseg.workflow.simulate.simulate`` only, so pointing PYTHONPATH at an older checkout times that one on
the same data and plan (the "before" of a speed change).

Usage: scripts/bench_simulate.py SITE_DATA... [--plan plan.toml] [--steps 40] [--modes fl,cds] [--threads 2]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sites", nargs="+", type=Path)
    parser.add_argument("--plan", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--modes", default="fl,cds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.simulate import simulate

    plan = load_plan(args.plan) if args.plan else None
    marks: list[tuple[float, str]] = []

    def say(message: str) -> None:
        marks.append((time.perf_counter(), message))
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fedseg-bench-sim-") as tmp:
        for mode in args.modes.split(","):
            start = time.perf_counter()
            marks.clear()
            simulate(args.sites, out=Path(tmp) / mode, modes=[mode], rounds=1, plan=plan, steps=args.steps,
                     device="cpu", say=say)
            end = time.perf_counter()
            first = next(t for t, m in marks if "round 1" in m)
            done = next((t for t, m in marks if t > first and "scoring" in m), end)  # test scoring is not the round
            round0 = next((t for t, m in marks if "evaluating the shared" in m), start)
            out[f"{mode}_round_s"] = round(done - first, 1)
            out["round0_eval_s"] = round(first - round0, 1)
    print(json.dumps({"steps": args.steps, "sites": [str(s) for s in args.sites], **out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

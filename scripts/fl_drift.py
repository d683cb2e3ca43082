#!/usr/bin/env python
"""Client drift in one FL round of a finished simulation: each site's trained model against the global.

Scores, on the datasets given with ``--on`` (every case), the global a round's sites received, each site's
signed update of that round (full weights) and the new global, their average. A site model far below the
received global on another site's cases is drift: local steps that serve its own data and undo what the
federation had learned for the others; the average then lands between. Used for issue 14's WT gap on the
demo's hospital-c (README, "What we measured"). Prints a table and, with ``--json``, the numbers.

Usage: scripts/fl_drift.py SIM_FOLDER ROUND --on DATA [DATA ...] [--json]
  SIM_FOLDER is a `fedseg simulate` output folder (or a campaign's seed-N folder) whose fl/ holds the round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads wreck shared CPUs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sim", type=Path)
    parser.add_argument("round", type=int)
    parser.add_argument("--on", type=Path, nargs="+", required=True, help="site datasets to score on (all cases)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    from fedseg.errors import FedsegError
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.federation.plan import load_plan
    from fedseg.labels import REGIONS
    from fedseg.workflow.initial import global_filename
    from fedseg.workflow.simulate.scoring import ALL_SPLITS, evaluate_weights
    from fedseg.workflow.simulate.sites import Site, member_ids

    torch.set_num_threads(args.threads)
    fl, r = args.sim / "fl", args.round
    if r < 1:
        parser.error("ROUND must be >= 1: round r's sites trained the global of round r - 1")
    try:
        plan = load_plan(fl / "plan.toml")

        def weights(path: Path, kind: Kind) -> dict[str, np.ndarray]:
            art = read_artifact(path, plan, kind=kind)  # verified against the plan's keys before it is read
            return {k: np.asarray(v, np.float32) for k, v in art.tensors.items()}

        models = {f"global r{r - 1} (received)": weights(fl / global_filename(r - 1), Kind.GLOBAL)}
        for site in plan.sites:
            models[f"{site.id} after round {r}"] = weights(fl / "updates" / f"r{r:04d}" / f"{site.id}.fedseg",
                                                           Kind.UPDATE)
        models[f"global r{r} (their average)"] = weights(fl / global_filename(r), Kind.GLOBAL)
        names = member_ids(args.on, ())
        on = [Site(names[d.resolve()], d) for d in args.on]
        scores = {name: {s.id: evaluate_weights(plan, w, [s], ALL_SPLITS)["dice"] for s in on}
                  for name, w in models.items()}
    except (FedsegError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    width = max(map(len, scores))
    print(f"{'model':{width}}  " + "  ".join(f"{s.id} WT / TC / ET" for s in on))
    for name, by_site in scores.items():
        print(f"{name:{width}}  " + "  ".join(" / ".join(f"{by_site[s.id][g]:.3f}" for g in REGIONS) + " " * max(
            0, len(s.id) - 9) for s in on))
    if args.json:
        print(json.dumps({"sim": str(args.sim), "round": r, "dice": scores}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

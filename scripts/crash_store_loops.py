"""Crash trials of the store loops: kill -9 members at random moments, restart them, compare the final global.

Each trial runs the coordinator and three sites as separate ``fedseg`` processes over a folder store, kills
random members ``--kills`` times and restarts them; every trial must finish with the payload digest of an
uninterrupted run of the same plan. Prints one JSON line per trial and a summary line. Not run in CI.

    python scripts/crash_store_loops.py --trials 20 --kills 3 --out /tmp/crash
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._store_crash import run_trial  # noqa: E402
from tests._store_fed import make_federation  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a trial may take (a loaded machine)")
    args = parser.parse_args()
    fed = args.out / "fed"
    if not (fed / "plan.toml").exists():
        make_federation(fed, rounds=args.rounds)
    reference, _ = run_trial(fed, args.out / "reference", kills=0, seed=0, timeout=args.timeout)
    same = 0
    for trial in range(args.trials):
        start = time.monotonic()
        digest, victims = run_trial(fed, args.out / f"trial-{trial:03d}", kills=args.kills, seed=trial,
                                    timeout=args.timeout)
        same += digest == reference
        print(json.dumps({"trial": trial, "killed": victims, "same_final_global": digest == reference,
                          "seconds": round(time.monotonic() - start, 1)}), flush=True)
    print(json.dumps({"trials": args.trials, "same_final_global": same, "reference": reference}), flush=True)
    return 0 if same == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())

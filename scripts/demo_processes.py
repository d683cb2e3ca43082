"""A real multi-process federation: the coordinator and three sites as separate ``fedseg`` OS processes.

They share nothing but a folder used as the round store; each runs its loop (``fedseg coordinator run``,
``fedseg site run``) until the plan's last round, then ``fedseg status`` prints the rounds x sites table.
The sites hold tiny synthetic datasets (the test-suite size), so it finishes in about a minute on a laptop.

    python scripts/demo_processes.py --out /tmp/fedseg-processes [--rounds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._store_crash import run_trial  # noqa: E402
from tests._store_fed import make_federation  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fed = args.out / "fed"
    if not (fed / "plan.toml").exists():
        make_federation(fed, rounds=args.rounds)
    run = args.out / "run"
    digest, _ = run_trial(fed, run, kills=0, seed=0)
    print(f"every global and update on {run / 'store'} verifies; final global payload sha256 {digest}")
    print(f"member logs: {run}/*.log")
    return subprocess.call([sys.executable, "-m", "fedseg", "status", "--plan", str(fed / "plan.toml"),
                            "--store", str(run / "store")])


if __name__ == "__main__":
    sys.exit(main())

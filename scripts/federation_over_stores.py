#!/usr/bin/env python
"""The fast demo's federation run by the store loops alone, over a folder, an SFTP server and an S3 server.

``fedseg demo --fast`` makes the three hospitals' datasets, keys and plan (its own rounds are not used);
then, for each backend, the coordinator and the three sites run as separate processes (``fedseg coordinator
run``, ``fedseg site run``) over a fresh store until the federation's signed result, and every global, every
update and the ledger are verified. The SFTP (asyncssh) and S3 (moto) servers are started here on
localhost, as in the tests. Aggregation is deterministic, so the three final globals must be the same
bytes. Prints one JSON line per backend and a summary line. A measurement, not a test: minutes on 2 cores.

    python scripts/federation_over_stores.py --out /tmp/fed-stores [--backends folder,sftp,s3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SITES = ("hospital-a", "hospital-b", "hospital-c")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backends", default="folder,sftp,s3")
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()

    from bench_store_scale import run_on_backends

    demo = args.out / "demo"
    if not (demo / "results.json").exists():
        subprocess.run([sys.executable, "-m", "fedseg", "demo", "--fast", "--out", str(demo)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    members = (demo / "fed" / "plan.toml", demo / "keys", {s: demo / s / "data" for s in SITES})
    results = run_on_backends(members, args.backends.split(","), args.out, args.poll)
    digests = {r["final_global_sha256"] for r in results.values()}
    summary = {"backends": list(results), "all_verified": all(r["all_verified"] for r in results.values()),
               "same_final_global": len(digests) == 1}
    print(json.dumps(summary), flush=True)
    (args.out / "federation-over-stores.json").write_text(json.dumps({"summary": summary, **results}, indent=2))
    return 0 if summary["same_final_global"] else 1


if __name__ == "__main__":
    sys.exit(main())

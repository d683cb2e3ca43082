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
import time
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

    from bench_store_scale import run_backend

    from tests._store_servers import make_bucket, s3_env, s3_server, sftp_server

    demo = args.out / "demo"
    if not (demo / "results.json").exists():
        subprocess.run([sys.executable, "-m", "fedseg", "demo", "--fast", "--out", str(demo)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    members = (demo / "fed" / "plan.toml", demo / "keys", {s: demo / s / "data" for s in SITES})
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env.pop("SSH_AUTH_SOCK", None)
    results: dict[str, dict] = {}
    for backend in args.backends.split(","):
        run = args.out / f"run-{backend}-{int(time.time())}"
        if backend == "folder":
            results[backend] = run_backend(*members, str(run / "store"), run, args.poll, env)
        elif backend == "sftp":
            root, home = run / "sftp-root", run / "home"
            root.mkdir(parents=True)
            os.environ["HOME"] = str(home)  # this process verifies the result over SFTP too
            os.environ.pop("SSH_AUTH_SOCK", None)
            with sftp_server(root, home) as port:
                results[backend] = run_backend(*members, f"sftp://127.0.0.1:{port}/fed", run, args.poll,
                                               {**env, "HOME": str(home)})
        elif backend == "s3":
            with s3_server() as endpoint:
                aws = s3_env(endpoint)
                os.environ.update(aws)
                make_bucket(endpoint, "fedseg")
                results[backend] = run_backend(*members, "s3://fedseg/fed", run, args.poll, {**env, **aws})
        else:
            raise SystemExit(f"--backends: {backend!r} is not folder, sftp or s3")
        print(json.dumps({"backend": backend, **results[backend]}), flush=True)
    digests = {r["final_global_sha256"] for r in results.values()}
    summary = {"backends": list(results), "all_verified": all(r["all_verified"] for r in results.values()),
               "same_final_global": len(digests) == 1}
    print(json.dumps(summary), flush=True)
    (args.out / "federation-over-stores.json").write_text(json.dumps({"summary": summary, **results}, indent=2))
    return 0 if summary["same_final_global"] else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Scale of the store loops: 20 sites with a tiny model over a local folder store and over an SFTP server.

The sites run as separate ``fedseg site run`` processes (one CPU thread each) that poll the store; the
coordinator runs as its own process (this script re-run with ``--coordinator``), instrumented: its wall
time (after writing the round-0 global) minus the time it sleeps between polls and minus the time in
``aggregate_round`` is what the loop itself costs (polling and listing the store, downloading and freezing
the updates, publishing, the report); that
figure per round, the aggregation seconds per round and the coordinator's peak RSS are printed as JSON,
one line per backend. The SFTP server is asyncssh's, started here on localhost (as in the tests). A
measurement, not a test: minutes on 2 cores.

    python scripts/bench_store_scale.py --out /tmp/store-scale [--sites 20] [--rounds 3] [--backends folder,sftp]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def coordinator(plan_path: Path, key: Path, url: str, work: Path, poll: float) -> dict:
    """Run the coordinator loop in this process; return its time split and peak RSS."""
    import fedseg.workflow.coordinator.aggregate as agg
    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.initial import write_initial_global
    from fedseg.workflow.store import open_store
    from fedseg.workflow.store.coordinator_loop import run_coordinator

    slept, aggregating, polls = [0.0], [0.0], [0]
    real = agg.aggregate_round

    def timed(**kwargs):  # noqa: ANN003, ANN202
        t = time.perf_counter()
        try:
            return real(**kwargs)
        finally:
            aggregating[0] += time.perf_counter() - t

    def sleep(seconds: float) -> None:
        slept[0] += seconds
        polls[0] += 1
        time.sleep(seconds)

    agg.aggregate_round = timed
    plan = load_plan(plan_path)
    t0 = time.perf_counter()
    write_initial_global(plan, load_private_key(key), work / "globals", seed=plan.training.seed)  # once, not a round
    initial = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_coordinator(plan, key=load_private_key(key), store=open_store(url), work=work, poll=poll,
                             sleep=sleep)
    wall = time.perf_counter() - t0
    rounds = max(1, result.final_round)
    return {"rounds": result.final_round, "initial_global_s": round(initial, 2), "wall_s": round(wall, 2),
            "sleep_s": round(slept[0], 2), "polls": polls[0],
            "aggregate_s_per_round": round(aggregating[0] / rounds, 3),
            "loop_s_per_round_outside_aggregation": round((wall - slept[0] - aggregating[0]) / rounds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_backend(plan: Path, keys: Path, data: dict[str, Path], url: str, run: Path, poll: float,
                env: dict[str, str]) -> dict:
    """Start one ``fedseg site run`` process per site of ``data`` and the instrumented coordinator on ``url``.

    Waits for the federation's end, then verifies every global, every update and the ledger; returns the
    coordinator's figures (see :func:`coordinator`) and the final global's payload digest.
    """
    run.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "fedseg"]
    procs = []
    for s, folder in data.items():
        log = open(run / f"{s}.log", "wb")  # noqa: SIM115 - kept open for the child's lifetime
        procs.append(subprocess.Popen([*base, "site", "run", "--plan", str(plan), "--data", str(folder), "--key",
                                       str(keys / f"{s}.key"), "--store", url, "--work", str(run / s), "--poll",
                                       str(poll), "--device", "cpu", "--threads", "1", "--state",
                                       str(run / s / "state.json")], env=env, stdout=log, stderr=subprocess.STDOUT))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--coordinator", str(plan), str(keys / "coordinator.key"), url,
                          str(run / "coord"), str(poll)], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    codes = [p.wait(600) for p in procs]
    if out.returncode != 0 or any(codes):
        raise SystemExit(f"{url}: coordinator exit {out.returncode}, site exits {codes}\n{out.stderr[-3000:]}")
    from tests._store_fed import check_finished

    digest = check_finished(plan, run / "coord", url)  # every artifact and the ledger verify
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    return {**stats, "federation_wall_s": round(wall, 1), "sites": len(data), "all_verified": True,
            "final_global_sha256": digest}


def run_on_backends(members: tuple[Path, Path, dict[str, Path]], backends: list[str], out: Path,
                    poll: float) -> dict[str, dict]:
    """Run the federation ``members`` (plan, key folder, site data) once per backend, each on a fresh store.

    ``folder`` is a local folder; ``sftp`` and ``s3`` are asyncssh's and moto's servers started here on
    localhost with throwaway credentials (in this process's environment too: it verifies the result).
    Prints one JSON line per backend and returns the figures of :func:`run_backend` by backend.
    """
    from tests._store_servers import make_bucket, s3_env, s3_server, sftp_server

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env.pop("SSH_AUTH_SOCK", None)  # the test server trusts only the throwaway key in HOME
    results: dict[str, dict] = {}
    for backend in backends:
        run = out / f"run-{backend}-{int(time.time())}"
        if backend == "folder":
            results[backend] = run_backend(*members, str(run / "store"), run, poll, env)
        elif backend == "sftp":
            root, home = run / "sftp-root", run / "home"
            root.mkdir(parents=True)
            os.environ["HOME"] = str(home)
            os.environ.pop("SSH_AUTH_SOCK", None)
            with sftp_server(root, home) as port:
                results[backend] = run_backend(*members, f"sftp://127.0.0.1:{port}/fed", run, poll,
                                               {**env, "HOME": str(home)})
        elif backend == "s3":
            with s3_server() as endpoint:
                aws = s3_env(endpoint)
                os.environ.update(aws)
                make_bucket(endpoint, "fedseg")
                results[backend] = run_backend(*members, "s3://fedseg/fed", run, poll, {**env, **aws})
        else:
            raise SystemExit(f"--backends: {backend!r} is not folder, sftp or s3")
        print(json.dumps({"backend": backend, **results[backend]}), flush=True)
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--coordinator":
        plan, key, url, work, poll = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]), sys.argv[6]
        print(json.dumps(coordinator(plan, key, url, work, float(poll))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--backends", default="folder,sftp")
    args = parser.parse_args()

    from tests._store_fed import make_federation

    sites = [f"site-{i:02d}" for i in range(args.sites)]
    fed = args.out / "fed"
    if not (fed / "plan.toml").exists():
        make_federation(fed, rounds=args.rounds, sites=tuple(sites))
    members = (fed / "plan.toml", fed / "keys", {s: fed / "data" / s for s in sites})
    results = run_on_backends(members, args.backends.split(","), args.out, args.poll)
    (args.out / "store-scale.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

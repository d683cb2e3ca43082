"""Kill -9 the store loops at random moments, restart them, and check the federation ends as without kills.

Used by ``tests/workflow/store/test_crash.py`` (a few kills) and ``scripts/crash_store_loops.py`` (many trials).
Each member runs as its own OS process through the ``fedseg`` CLI over a folder store.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests._store_fed import SITES, check_finished

ROOT = Path(__file__).resolve().parents[1]


def _commands(fed: Path, run: Path) -> dict[str, list[str]]:
    base = [sys.executable, "-m", "fedseg"]
    store = str(run / "store")
    cmds = {"coordinator": [*base, "coordinator", "run", "--plan", str(fed / "plan.toml"), "--key",
                            str(fed / "keys" / "coordinator.key"), "--store", store, "--work", str(run / "coord"),
                            "--poll", "0.05"]}
    for s in SITES:
        cmds[s] = [*base, "site", "run", "--plan", str(fed / "plan.toml"), "--data", str(fed / "data" / s), "--key",
                   str(fed / "keys" / f"{s}.key"), "--store", store, "--work", str(run / s), "--poll", "0.05",
                   "--device", "cpu", "--threads", "1", "--state", str(run / s / "state.json")]
    return cmds


def run_trial(fed: Path, run: Path, *, kills: int, seed: int, timeout: float = 300.0,
              window: tuple[float, float] = (1.0, 8.0)) -> tuple[str, list[str]]:
    """Run the federation in ``run`` with ``kills`` SIGKILLs of random members; return (final digest, victims)."""
    rng = random.Random(seed)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    cmds = _commands(fed, run)
    run.mkdir(parents=True, exist_ok=True)

    def start(name: str) -> subprocess.Popen:
        log = open(run / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        return subprocess.Popen(cmds[name], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=run)

    procs = {name: start(name) for name in cmds}
    victims: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(*window))
            alive = sorted(n for n, p in procs.items() if p.poll() is None)
            if not alive:
                break
            victim = rng.choice(alive)
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            victims.append(victim)
            procs[victim] = start(victim)
        for name, proc in procs.items():
            code = proc.wait(max(1.0, deadline - time.monotonic()))
            if code != 0:
                raise AssertionError(f"{name} exited {code}; see {run / (name + '.log')}:\n"
                                     + (run / f"{name}.log").read_text()[-3000:])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return check_finished(fed / "plan.toml", run / "coord", str(run / "store")), victims

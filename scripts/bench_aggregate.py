"""Benchmark `fedseg aggregate` end to end: 3 and 10 updates of a ~20M-parameter model.

Each configuration runs the real CLI command (the Typer app, as `fedseg aggregate`) in its own subprocess;
its process wall time (with interpreter start and imports), the time inside the command, and its peak RSS
(ru_maxrss from wait4) are reported beside, in the same run and on the same files/weights:
hashing the input files with hashlib.sha256 (the floor for any verifying reader), and an in-memory NumPy
weighted average written like Flower's ``flwr.server.strategy.aggregate.aggregate`` (Flower itself is not
installed here; the reference is that function's algorithm: scale every layer by its example count, add,
divide). Targets: FedAvg within 2x the hashing time; peak RSS under 4x one model for 10 updates.
Prints one JSON object. Usage: python scripts/bench_aggregate.py [--params 20000000] [--strategies fedavg,median]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import reduce
from pathlib import Path

import numpy as np


def fake_model(params: int, rng: np.random.Generator, base: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """A U-Net-like list of conv kernels (256x256x3x3x3) plus biases summing to about ``params``."""
    conv = 256 * 256 * 27
    shapes = {f"stage{i}.conv.weight": (256, 256, 3, 3, 3) for i in range(max(1, params // conv))}
    shapes.update({f"stage{i}.conv.bias": (256,) for i in range(len(shapes))})
    if base is not None:
        return {k: (v + rng.normal(0, 1e-3, v.shape).astype(np.float32)) for k, v in base.items()}
    return {k: rng.normal(0, 0.02, s).astype(np.float32) for k, s in shapes.items()}


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run ``cmd``; return (seconds, peak RSS bytes, exit code, last stdout line).

    ru_maxrss of a forked child also counts the parent's pages before exec (Linux carries the
    high-water mark across exec), so the child reports VmHWM itself and that figure is used instead.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(stderr.decode())
    lines = stdout.decode().strip().splitlines()
    return seconds, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), lines[-1] if lines else ""


def vm_hwm() -> int:
    """Return this process's peak RSS in bytes (VmHWM: per address space, so it restarts at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(argv: list[str]) -> None:
    """Run `fedseg aggregate ARGV` in this process; print the seconds in the command and the peak RSS."""
    from fedseg.cli.app import app

    if not argv:  # baseline: the imports only
        print(f"RESULT 0 {vm_hwm()}")
        return
    start = time.perf_counter()
    try:
        app(argv, standalone_mode=False)
    finally:
        print(f"RESULT {time.perf_counter() - start:.4f} {vm_hwm()}")


def sha256_files(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return time.perf_counter() - start


def flower_style_average(results: list[tuple[list[np.ndarray], int]]) -> float:
    """Time the algorithm of Flower's aggregate() on in-memory weights."""
    start = time.perf_counter()
    total = sum(n for _, n in results)
    weighted = [[layer * n for layer in weights] for weights, n in results]
    _ = [reduce(np.add, layers) / total for layers in zip(*weighted)]
    return time.perf_counter() - start


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=20_000_000)
    parser.add_argument("--counts", default="3,10")
    parser.add_argument("--strategies", default="fedavg")
    args = parser.parse_args()

    from fedseg.configtools import config_to_dict
    from fedseg.federation.artifact import write_artifact
    from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
    from fedseg.federation.plan import Member, new_plan, write_plan

    counts = [int(c) for c in args.counts.split(",")]
    sites = [f"site-{i:02d}" for i in range(max(counts))]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"flower_installed": importlib.util.find_spec("flwr") is not None,
                              "peer": "in-memory NumPy average with Flower's aggregate() algorithm (flwr not installed)"}
    with tempfile.TemporaryDirectory(prefix="bench-aggregate-") as tmp:
        d = Path(tmp)
        for name in ["coordinator", *sites]:
            generate_keypair(name, d / "keys")
        plan = new_plan("bench", Member("coordinator", load_public_key(d / "keys" / "coordinator.pub")),
                        [Member(s, load_public_key(d / "keys" / f"{s}.pub")) for s in sites])
        write_plan(plan, d / "plan.toml")
        g = fake_model(args.params, rng)
        model_bytes = sum(a.nbytes for a in g.values())
        out["parameters"] = sum(a.size for a in g.values())
        out["model_mib"] = round(model_bytes / 2**20, 1)
        coord = load_private_key(d / "keys" / "coordinator.key")
        gm = {"kind": "global", "round": 0, "signer": "coordinator", "parent_sha256": None, "weights": "full",
              "model": config_to_dict(plan.model), "created_at": "2024-01-01T00:00:00Z"}
        gart = write_artifact(d / "global-r0000.fedseg", manifest=gm, tensors=g, key=coord, plan=plan)
        weights = []
        for i, site in enumerate(sites):
            local = fake_model(args.params, rng, base=g)
            n = 100 + 10 * i
            um = {"kind": "update", "round": 1, "signer": site, "parent_sha256": gart.digest, "weights": "full",
                  "num_examples": n, "metrics": {}, "model": config_to_dict(plan.model),
                  "created_at": "2024-01-02T00:00:00Z"}
            write_artifact(d / f"{site}.fedseg", manifest=um, tensors=local, key=load_private_key(d / "keys" / f"{site}.key"),
                           plan=plan)
            weights.append(([local[k] for k in sorted(local)], n))
        del g, gart
        _, _, _, last = peak_rss_of([sys.executable, __file__, "--child"], env)
        base_rss = int(last.split()[2])
        out["interpreter_baseline_rss_mib"] = round(base_rss / 2**20, 1)
        runs = []
        for strategy in args.strategies.split(","):
            for k in counts:
                files = [d / f"{s}.fedseg" for s in sites[:k]]
                hash_s = min(sha256_files([d / "global-r0000.fedseg", *files]) for _ in range(2))
                hash_out = sha256_files([d / "global-r0000.fedseg"])  # about what writing the output hashes
                fdir = d / f"out-{strategy}-{k}"
                cmd = [sys.executable, __file__, "--child", "aggregate", "--plan", str(d / "plan.toml"), "--global",
                       str(d / "global-r0000.fedseg"), "--key", str(d / "keys" / "coordinator.key"),
                       "--out", str(fdir / "global-r0001.fedseg"), "--strategy", strategy, *map(str, files)]
                seconds, _, code, last = peak_rss_of(cmd, env)
                command_s, rss = float(last.split()[1]), int(last.split()[2])
                numpy_s = flower_style_average(weights[:k]) if strategy == "fedavg" else None
                runs.append({
                    "strategy": strategy, "updates": k, "exit_code": code, "process_wall_s": round(seconds, 2),
                    "aggregate_command_s": round(command_s, 2), "sha256_inputs_s": round(hash_s, 2),
                    "ratio_vs_hashing": round(command_s / hash_s, 2),
                    "ratio_vs_hashing_inputs_and_output": round(command_s / (hash_s + hash_out), 2),
                    "numpy_flower_style_s": None if numpy_s is None else round(numpy_s, 2),
                    "peak_rss_mib": round(rss / 2**20, 1), "peak_rss_models": round(rss / model_bytes, 2),
                    "peak_rss_above_baseline_models": round((rss - base_rss) / model_bytes, 2),
                })
        out["runs"] = runs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

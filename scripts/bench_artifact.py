#!/usr/bin/env python3
"""Benchmark signed artifacts: write+sign and verify+read throughput on ~100 MB of float32 tensors.

Prints JSON: MB/s for write+sign, verify+read (every check of DESIGN §4.3, finiteness included) and
plain ``hashlib.sha256`` over the same payload bytes in the same run, their ratio (target >= 0.40),
and the peak memory of one verify+read measured in a fresh subprocess as a multiple of the payload
(target <= ~3). Peers on the same tensors where installed: ``safetensors`` (unsigned, no hash) and
``np.savez`` / ``np.load(allow_pickle=False)``. Not a test.

Usage: python scripts/bench_artifact.py [--mb 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fedseg.federation.artifact import Kind, TensorSpec, read_artifact, write_artifact
from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.plan import Member, new_plan, write_plan


def make_tensors(total_mb: float) -> dict[str, np.ndarray]:
    """U-Net-like float32 tensors (3x3x3 convolutions of growing width) summing to about ``total_mb``."""
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}
    budget = int(total_mb * 1e6 / 4)
    i = 0
    while budget > 0:
        width = min(32 * 2 ** (i % 5), 512)
        n = min(budget, width * width * 27)
        tensors[f"stages.{i}.conv.weight"] = rng.standard_normal(n, dtype=np.float32).reshape(-1) * 0.01
        tensors[f"stages.{i}.norm.bias"] = np.zeros(width, np.float32)
        budget -= n + width
        i += 1
    return tensors


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_read_memory(path: Path, plan_path: Path) -> dict[str, float]:
    """Run one verify+read in a fresh interpreter; return its peak memory growth in MB.

    ``rss``: growth of the kernel's resident high-water mark (VmHWM, reset through /proc/self/clear_refs;
    ru_maxrss would inherit the forking parent's peak). ``traced``: tracemalloc's peak of Python/NumPy
    allocations during the read.
    """
    code = f"""
import json, tracemalloc, numpy, h5py
from fedseg.federation.artifact import read_artifact
from fedseg.federation.plan import load_plan

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

plan = load_plan({str(plan_path)!r})
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak RSS to the current RSS
before = rss_kb()
tracemalloc.start()
art = read_artifact({str(path)!r}, plan)
traced_peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"rss_mb": (hwm_kb() - before) * 1024 / 1e6, "traced_mb": traced_peak / 1e6}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tensors = make_tensors(args.mb)
    spec = {name: TensorSpec(array.shape) for name, array in tensors.items()}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        generate_keypair("coordinator", d)
        generate_keypair("site-a", d)
        plan = new_plan("bench", Member("coordinator", load_public_key(d / "coordinator.pub")),
                        [Member("site-a", load_public_key(d / "site-a.pub"))])
        write_plan(plan, d / "plan.toml")
        key = load_private_key(d / "site-a.key")
        manifest = {"kind": "update", "round": 1, "signer": "site-a", "parent_sha256": None}
        path = d / "u.fedseg"

        write_artifact(path, manifest=manifest, tensors=tensors, key=key, plan=plan)  # warm-up (imports h5py)
        t_write = best(lambda: write_artifact(path, manifest=manifest, tensors=tensors, key=key, plan=plan),
                       args.repeat)
        art = read_artifact(path, plan, kind=Kind.UPDATE, spec=spec)
        payload_bytes = art.manifest["payload_bytes"]
        assert all(np.array_equal(art.tensors[k], tensors[k]) for k in tensors)
        del art
        t_read = best(lambda: read_artifact(path, plan, kind=Kind.UPDATE, spec=spec), args.repeat)
        payload = path.read_bytes()[-payload_bytes:]
        t_sha = best(lambda: hashlib.sha256(payload).hexdigest(), args.repeat)
        t_file_sha = best(lambda: hashlib.sha256(path.read_bytes()).hexdigest(), args.repeat)
        memory = peak_read_memory(path, d / "plan.toml")

        peers: dict[str, float | str] = {}
        buffer = io.BytesIO()
        np.savez(buffer, **tensors)
        npz = buffer.getvalue()
        peers["npz_load_mb_s"] = round(len(npz) / 1e6 / best(
            lambda: dict(np.load(io.BytesIO(npz), allow_pickle=False)), args.repeat), 1)
        try:
            from safetensors.numpy import load as st_load
            from safetensors.numpy import save as st_save

            blob = st_save(tensors)
            peers["safetensors_load_mb_s"] = round(len(blob) / 1e6 / best(lambda: st_load(blob), args.repeat), 1)
        except ImportError:
            peers["safetensors_load_mb_s"] = "not installed"

    mb = payload_bytes / 1e6
    result = {
        "payload_mb": round(mb, 1),
        "tensors": len(tensors),
        "write_sign_mb_s": round(mb / t_write, 1),
        "verify_read_mb_s": round(mb / t_read, 1),
        "sha256_mb_s": round(mb / t_sha, 1),
        "sha256_incl_file_read_mb_s": round(mb / t_file_sha, 1),
        "verify_read_over_sha256": round(t_sha / t_read, 3),
        "target_ratio": 0.40,
        "peak_read_rss_growth_mb": round(memory["rss_mb"], 1),
        "peak_read_rss_over_payload": round(memory["rss_mb"] / mb, 2),
        "peak_read_traced_mb": round(memory["traced_mb"], 1),
        "target_memory_ratio": 3.0,
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peers_same_tensors": peers,
        "repeat": args.repeat,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

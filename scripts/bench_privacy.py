#!/usr/bin/env python
"""Privacy benchmark: final WT Dice of non-private FL vs DP-SGD at several ε and vs central DP-FedAvg.

Three non-IID synthetic sites (``fedseg.synth`` profiles 0, 1, 2, each with its own scanner look) with
``--cases`` cases each (20% validation) are preprocessed once; then ``fedseg simulate --modes fl`` runs
once per privacy setting on the same data and model: ``off``, ``dp-sgd`` at each ``--epsilons`` value
(δ = ``--delta``) and ``central`` at the largest ε. Prints and writes ``WORKDIR/privacy-bench.json`` with
each setting's final pooled validation Dice, its drop from non-private FL, the noise multipliers the plan
derived, and the wall time (its overhead over non-private FL). This is a measurement, not a test; at the
issue's sizes (tens of cases per site) it runs for hours on a CPU: start it in the background.

Usage: scripts/bench_privacy.py --workdir DIR [--cases 40] [--rounds 5] [--steps 100] [--epsilons 1,3,8]
       [--widths 8,16,32] [--patch 32] [--batch 4] [--spacing 3] [--device auto] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads wreck shared CPUs


def build_sites(workdir: Path, cases: int, spacing: float, size_scale: float) -> list[Path]:
    """Synthesize and preprocess three non-IID sites (profiles 0, 1, 2); reuse what is already there."""
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.synth import write_cases
    from fedseg.workflow.preprocess.build import build_dataset

    config = PreprocessConfig(spacing=(spacing,) * 3, val_fraction=0.2)
    dirs = []
    for profile in range(3):
        raw, data = workdir / f"raw-{profile}", workdir / f"site-{profile}"
        if not raw.exists():
            write_cases(raw, cases=cases, profile=profile, seed=profile, size_scale=size_scale, prefix=f"P{profile}")
        if not (data / "dataset.json").exists():
            build_dataset(raw, data, config)
        dirs.append(data)
    return dirs


def template(workdir: Path, args: argparse.Namespace, privacy: dict) -> object:
    """Return the plan template of one setting (simulate replaces its members with fresh keys)."""
    from fedseg.configs.aggregation import AggregationConfig, Weighting
    from fedseg.configs.model import ModelConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.federation.keys import generate_keypair, load_public_key
    from fedseg.federation.plan import Member, new_plan
    from fedseg.privacy import PrivacyConfig

    keys = workdir / "template-keys"
    for name in ("c", "s0", "s1", "s2"):
        if not (keys / f"{name}.pub").exists():
            generate_keypair(name, keys)
    widths = [int(w) for w in args.widths.split(",")]
    model = config_from_mapping(ModelConfig, {"widths": widths, "kernels": [[3, 3, 3]] * len(widths),
                                              "strides": [[1, 1, 1]] + [[2, 2, 2]] * (len(widths) - 1),
                                              "convs_per_stage": 1}, "model")
    training = TrainingConfig(patch_size=(args.patch,) * 3, batch_size=args.batch, steps_per_round=args.steps,
                              learning_rate=args.lr, val_overlap=0.25, amp=False)
    config = config_from_mapping(PrivacyConfig, privacy, "privacy")
    aggregation = AggregationConfig(min_sites=3)
    if config.mode.value == "central":
        aggregation = replace(aggregation, weighting=Weighting.UNIFORM)
    return new_plan("privacy-bench", Member("c", load_public_key(keys / "c.pub")),
                    [Member(f"s{i}", load_public_key(keys / f"s{i}.pub"), 1) for i in range(3)], rounds=args.rounds,
                    model=model,
                    training=training, aggregation=aggregation, privacy=config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=40, help="cases per site (20%% validation)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--clip", type=float, default=1.0, help="DP-SGD per-case clip")
    parser.add_argument("--central-clip", type=float, default=0.5, help="central DP per-site delta clip")
    parser.add_argument("--widths", default="8,16,32")
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--size-scale", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fedseg.workflow.privacy_plan import planned_privacy
    from fedseg.workflow.simulate import simulate

    args.workdir.mkdir(parents=True, exist_ok=True)
    sites = build_sites(args.workdir, args.cases, args.spacing, args.size_scale)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    settings = {"off": {"mode": "off"}}
    for eps in epsilons:
        settings[f"dp-sgd eps={eps:g}"] = {"mode": "dp-sgd", "target_epsilon": eps, "delta": args.delta,
                                           "max_grad_norm": args.clip}
    settings[f"central eps={max(epsilons):g}"] = {"mode": "central", "target_epsilon": max(epsilons),
                                                  "delta": args.delta, "central_clip_norm": args.central_clip}
    rows = {}
    for name, privacy in settings.items():
        t0 = time.perf_counter()
        out = args.workdir / name.replace(" ", "_").replace("=", "")
        result = simulate(sites, out=out, modes=["fl"], rounds=args.rounds, plan=template(args.workdir, args, privacy),
                          device=args.device, say=lambda m: print(m, flush=True))
        from fedseg.federation.plan import load_plan

        rows[name] = {"dice": result.curves["fl"][-1]["dice"], "seconds": round(time.perf_counter() - t0, 1),
                      "planned": planned_privacy(load_plan(out / "fl" / "plan.toml"))}
        summary = _summary(rows, sites, args)  # written after every setting: a long run reports what it has
        (args.workdir / "privacy-bench.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


def _summary(rows: dict, sites: list[Path], args: argparse.Namespace) -> dict:
    """Each setting's Dice, its WT drop from non-private FL (absolute and relative) and its time overhead."""
    from fedseg.data.dataset import load_dataset

    base = rows["off"]
    for row in rows.values():
        row["wt_drop"] = base["dice"]["WT"] - row["dice"]["WT"]
        row["wt_drop_relative"] = row["wt_drop"] / max(base["dice"]["WT"], 1e-9)
        row["time_overhead"] = row["seconds"] / max(base["seconds"], 1e-9)
    counts = {str(s): {split: len(load_dataset(s).split(split)) for split in ("train", "val")} for s in sites}
    return {"sites": counts, "args": {k: str(v) for k, v in vars(args).items()}, "results": rows}


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""The FL-vs-pooled measurement campaign of issue 14 (items 4-5): hours on 2 cores; never run in CI.

On three non-IID site datasets (and one external site) at the demo's model size, each variant of the
federation's settings is simulated under the convergence protocol (``--budget converged``) over several
seeds: FL against CDS (and, for the baseline, IIL and CIIL), selected on validation, reported on test and
on the external site. After each variant one JSON line is printed (and ``OUT/campaign.jsonl`` appended):
the variant, its settings and the summary of :func:`fedseg.workflow.simulate.seeds.summarize`.

Usage: scripts/fl_vs_cds.py SITE_DATA SITE_DATA SITE_DATA --external SITE_DATA --out /tmp/fl-vs-cds
       [--seeds 3] [--patience 3] [--max-rounds 30] [--variants baseline,constant-lr,...] [--plan PLAN]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads wreck shared CPUs

#: variant -> (modes, training changes, aggregation changes); each measured on the same sites and seeds.
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "baseline": ("fl,cds,iil,ciil", {}, {}),
    "constant-lr": ("fl,cds", {"lr_schedule": "constant"}, {}),
    "fedavgm": ("fl", {}, {"strategy": "fedavgm", "server_learning_rate": 1.0, "server_momentum": 0.9}),
    "fedadam": ("fl", {}, {"strategy": "fedadam", "server_learning_rate": 0.01}),
    "fedprox": ("fl", {"fedprox_mu": 0.01}, {}),
    "steps-20": ("fl,cds", {"steps_per_round": 20}, {}),
}


def _plan(base: Any, training: dict[str, Any], aggregation: dict[str, Any]) -> Any:
    from fedseg.configs.aggregation import AggregationConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping, config_to_dict

    t = config_from_mapping(TrainingConfig, {**config_to_dict(base.training), **training}, "training")
    a = config_from_mapping(AggregationConfig, {**config_to_dict(base.aggregation), **aggregation}, "aggregation")
    return base.with_settings(training=t, aggregation=a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sites", nargs="+", type=Path)
    parser.add_argument("--external", nargs="*", type=Path, default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--max-rounds", type=int, default=30)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plan", type=Path, help="model/training/aggregation template (default: sized to the CPU)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.simulate import simulate
    from fedseg.workflow.simulate.seeds import simulate_repeated

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    if args.plan is not None:
        base = load_plan(args.plan)
    else:
        probe = args.out / "probe"  # a 1-round, 1-step run that writes the device-sized (demo) plan
        simulate(args.sites, out=probe, modes=["cds"], rounds=1, steps=1, device="cpu", say=say)
        base = load_plan(probe / "fl" / "plan.toml")
    for name in args.variants.split(","):
        modes, training, aggregation = VARIANTS[name]
        start = time.perf_counter()
        summary = simulate_repeated(args.sites, out=args.out / name, seeds=args.seeds, external=args.external,
                                    modes=modes.split(","), budget="converged", patience=args.patience,
                                    max_rounds=args.max_rounds, plan=_plan(base, training, aggregation),
                                    device="cpu", say=say)
        line = {"variant": name, "training": training, "aggregation": aggregation,
                "seconds": round(time.perf_counter() - start), "summary": summary}
        with open(args.out / "campaign.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

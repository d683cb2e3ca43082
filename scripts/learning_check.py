#!/usr/bin/env python
"""Learning check: does local training reach validation WT Dice >= 0.80 on synthetic data within 10 minutes?

Synthetic cases from ``fedseg.synth`` (site profile 0) are preprocessed at 2 mm with ``fedseg.workflow.preprocess.build``;
the sorted case list is split 8 train / 4 validation (the split is rewritten in dataset.json, the
preprocessing itself is the plan's). Then the real site workflow runs: a plan with the chosen small
model, the signed round-0 global, ``train_local`` (validation before and after, checkpoint, signed
update). Prints JSON with the configuration, the wall time of training, and validation Dice per region.
This is a measurement, not a test; it takes minutes.

Usage: scripts/learning_check.py [--data DIR] [--workdir DIR] [--steps 500] [--widths 8,16,32,64] [--convs 1] [--lr 1e-2] [--patch 48]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads wreck shared CPUs


def build_data(workdir: Path, cases: int, val: int, seed: int) -> Path:
    """Synthesize ``cases`` raw cases, preprocess them at 2 mm, and split the last ``val`` off for validation."""
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.synth.writer import write_cases
    from fedseg.workflow.preprocess.build import build_dataset

    raw, data = workdir / "raw", workdir / "data2mm"
    if not raw.exists():
        write_cases(raw, cases=cases, profile=0, seed=seed)
    build_dataset(raw, data, PreprocessConfig(spacing=(2.0, 2.0, 2.0)), qc_png=False)
    return data


def resplit(data: Path, val: int) -> None:
    """Make the last ``val`` cases (sorted by id) the validation split and the rest train."""
    from fedseg.data.dataset import load_dataset, write_dataset_json

    ds = load_dataset(data)
    cases = sorted(ds.cases, key=lambda c: c.id)
    for i, case in enumerate(cases):
        case.split = "val" if i >= len(cases) - val else "train"
    write_dataset_json(data, ds.meta, cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an already preprocessed 2 mm dataset (skips synth/preprocess)")
    parser.add_argument("--workdir", type=Path, help="where raw data, dataset and federation files go")
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widths", default="8,16,32,64")
    parser.add_argument("--convs", type=int, default=1)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--foreground", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fedseg.configs.model import ModelConfig
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.data.dataset import load_dataset
    from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
    from fedseg.federation.plan import Member, new_plan
    from fedseg.model.spec import model_tensor_spec
    from fedseg.train.loop import StepInfo
    from fedseg.workflow.initial import write_initial_global
    from fedseg.workflow.site.train import train_local

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fedseg-learning-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = args.data or build_data(workdir, args.cases, args.val, args.seed)
    prep_s = time.perf_counter() - t0
    resplit(data, args.val)
    ds = load_dataset(data)

    widths = [int(w) for w in args.widths.split(",")]
    model = config_from_mapping(ModelConfig, {
        "widths": widths, "kernels": [[3, 3, 3]] * len(widths),
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (len(widths) - 1), "convs_per_stage": args.convs}, "model")
    training = TrainingConfig(patch_size=(args.patch,) * 3, batch_size=args.batch, steps_per_round=args.steps,
                              learning_rate=args.lr, foreground_fraction=args.foreground, val_overlap=0.25)
    fed = workdir / f"fed-{int(time.time())}"
    keys = fed / "keys"
    for name in ("coordinator", "site-a"):
        generate_keypair(name, keys)
    plan = new_plan("learning-check", Member("coordinator", load_public_key(keys / "coordinator.pub")),
                    [Member("site-a", load_public_key(keys / "site-a.pub"))], model=model, training=training,
                    preprocessing=PreprocessConfig(spacing=(2.0, 2.0, 2.0)))
    global_path = write_initial_global(plan, load_private_key(keys / "coordinator.key"), fed)
    marks: dict[str, float] = {}

    def progress(event: object) -> None:
        if isinstance(event, StepInfo):
            marks.setdefault("train_start", time.perf_counter())
            marks["train_end"] = time.perf_counter()
            if event.step % 25 == 0:
                print(f"step {event.step}/{event.total} loss {event.loss:.4f} {event.patches_per_s:.2f} patches/s",
                      file=sys.stderr, flush=True)

    t1 = time.perf_counter()
    result = train_local(plan, global_path, data, load_private_key(keys / "site-a.key"), fed / "site-a-r0001.fedseg",
                         device="cpu", progress=progress)
    total_s = time.perf_counter() - t1
    params = sum(math.prod(s.shape) for s in model_tensor_spec(model).values())
    print(json.dumps({
        "train_cases": len(ds.split("train")), "val_cases": len(ds.split("val")),
        "case_shapes": [list(ds.reader(c).shape) for c in ds.cases][:3],
        "model": {"widths": widths, "convs_per_stage": args.convs, "parameters": params},
        "training": {"patch": args.patch, "batch": args.batch, "lr": args.lr, "steps": args.steps,
                     "optimizer": training.optimizer.value, "schedule": training.lr_schedule.value,
                     "foreground_fraction": args.foreground},
        "threads": args.threads,
        "preprocess_s": round(prep_s, 1),
        "train_s": round(marks.get("train_end", t1) - marks.get("train_start", t1), 1),
        "train_local_total_s": round(total_s, 1),
        "final_loss": result.train_loss,
        "val_dice_before": result.val_dice_before,
        "val_dice_after": result.val_dice_after,
        "passes": bool(result.val_dice_after and result.val_dice_after["WT"] >= 0.80 and total_s <= 600),
        "update": str(result.update_path),
    }, indent=2))


if __name__ == "__main__":
    main()

"""Write the compatibility fixture ``tests/fixtures/compat-v0_1/``: an old plan and old signed artifacts.

Run once with the code whose file formats the fixture freezes (it was made before issue 11's manifest
and artifact rework); the test ``tests/federation/test_compat.py`` then checks that later code still
loads that plan with the same hash and verifies those artifacts. Keys are made in a temporary folder and
thrown away: the fixture holds no private key, only ``plan.toml``, the ``.fedseg`` files and
``fixture.json`` (hashes, digests, the commit that made them).

    PYTHONPATH=$PWD python scripts/make_compat_fixture.py [--out tests/fixtures/compat-v0_1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

TINY_MODEL = {"widths": [4, 8], "kernels": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
              "convs_per_stage": 1}
TINY_TRAINING = {"patch_size": [16, 16, 16], "batch_size": 2, "steps_per_round": 4, "learning_rate": 1e-2,
                 "amp": False, "val_overlap": 0.25}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fake_checkpoint(ckpt_dir: Path, plan, parent_sha256: str, site: str, weights: dict) -> None:  # noqa: ANN001
    """Write a finished checkpoint folder by hand, as train-local leaves it (no training needed)."""
    from fedseg.configtools import config_to_dict
    from fedseg.train import checkpoint as ckpt

    meta = {
        "round": 1, "site": site, "federation_id": plan.federation_id, "plan_sha256": plan.sha256,
        "parent_sha256": parent_sha256, "training": config_to_dict(plan.training),
        "model": config_to_dict(plan.model), "total_steps": 4, "num_examples": 3,
        "rng": {"scheme": "numpy default_rng([seed, step]) per batch", "seed": plan.training.seed},
        "step": 4, "complete": True, "losses": [1.0, 0.9, 0.8, 0.7], "seconds": 1.0,
        "metrics": {"val_dice_before": {"WT": 0.1, "TC": 0.1, "ET": 0.1},
                    "val_dice_after": {"WT": 0.2, "TC": 0.2, "ET": 0.2}},
    }
    ckpt.write_tensors(ckpt_dir / ckpt.GLOBAL_FILE, weights)
    ckpt.save_checkpoint(ckpt_dir, meta, weights, None)


def make_fixture(out: Path) -> dict:
    """Write the fixture files into ``out`` (replacing it) and return what fixture.json records."""
    from fedseg.configs.model import ModelConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.federation.artifact import read_artifact
    from fedseg.federation.keys import generate_keypair, load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.model.spec import initial_weights
    from fedseg.workflow.coordinator.aggregate import aggregate_round
    from fedseg.workflow.init import init_federation
    from fedseg.workflow.site.export import export_update

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        keys = tmp_path / "keys"
        for name in ("coordinator", "site-a", "site-b"):
            generate_keypair(name, keys)
        fed = tmp_path / "fed"
        init_federation(name="compat-fed", coordinator_key=keys / "coordinator.key",
                        sites=[("site-a", keys / "site-a.pub"), ("site-b", keys / "site-b.pub")], out_dir=fed,
                        model=config_from_mapping(ModelConfig, TINY_MODEL, "model"), training=TINY_TRAINING,
                        settings={"rounds": 3}, seed=7)
        plan = load_plan(fed / "plan.toml")
        glob = read_artifact(fed / "global-r0000.fedseg", plan)
        local = {k: v + np.float32(0.01) for k, v in initial_weights(plan.model, 8).items()}
        site_key = load_private_key(keys / "site-a.key")
        _fake_checkpoint(tmp_path / "ckpt", plan, glob.digest, "site-a", local)
        export_update(tmp_path / "ckpt", plan, site_key, fed / "site-a-r0001.fedseg")
        export_update(tmp_path / "ckpt", plan, site_key, fed / "site-a-r0001-delta16.fedseg", dtype="float16",
                      weights="delta")
        site_b = load_private_key(keys / "site-b.key")
        _fake_checkpoint(tmp_path / "ckpt-b", plan, glob.digest, "site-b", initial_weights(plan.model, 9))
        export_update(tmp_path / "ckpt-b", plan, site_b, fed / "site-b-r0001.fedseg")
        aggregate_round(plan=plan, global_path=fed / "global-r0000.fedseg", key=load_private_key(keys / "coordinator.key"),
                        update_paths=[fed / "site-a-r0001.fedseg", fed / "site-b-r0001.fedseg"],
                        out=fed / "global-r0001.fedseg", min_sites=2, ledger_path=tmp_path / "ledger.jsonl")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        files = {}
        for name in ("plan.toml", "global-r0000.fedseg", "site-a-r0001.fedseg", "site-a-r0001-delta16.fedseg",
                     "global-r0001.fedseg"):
            shutil.copy2(fed / name, out / name)
            if name.endswith(".fedseg"):
                art = read_artifact(out / name, plan, load_tensors=False)
                files[name] = {"kind": art.manifest["kind"], "round": art.manifest["round"],
                               "payload_sha256": art.digest, "manifest": art.manifest}
    record = {"made_by": "scripts/make_compat_fixture.py", "commit": _commit(), "plan_sha256": plan.sha256,
              "federation_id": plan.federation_id, "artifacts": files}
    (out / "fixture.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
    (out / "README.md").write_text(
        "# compat-v0_1: files written before issue 11 (typed manifests, split artifact code)\n\n"
        f"Made by `scripts/make_compat_fixture.py` at commit {record['commit']}; plan sha256 "
        f"`{record['plan_sha256']}`. No private key is kept: the files can be verified, never re-signed.\n"
        "`tests/federation/test_compat.py` checks that they still load and verify (the round-0 global expires 30 days\n"
        "after it was made, so only `read_artifact`, which ignores expiry, is used on it).\n", "utf-8")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/compat-v0_1"))
    args = parser.parse_args()
    record = make_fixture(args.out)
    print(f"wrote {args.out} (plan {record['plan_sha256'][:12]}, {len(record['artifacts'])} artifacts)")


if __name__ == "__main__":
    main()

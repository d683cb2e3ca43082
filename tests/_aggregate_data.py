"""Tiny fake models and signed round artifacts for the aggregation tests (made at run time)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configtools import config_to_dict
from fedseg.federation import artifact
from fedseg.federation.artifact import write_artifact
from fedseg.federation.plan import Plan

SHAPES = {"enc.weight": (4, 3), "enc.bias": (4,), "dec.weight": (2, 2, 2)}
GLOBAL_TIME = "2024-01-01T00:00:00Z"


def model(value: float = 0.0, rng: np.random.Generator | None = None, scale: float = 0.1) -> dict[str, np.ndarray]:
    """Return a fake model: every tensor filled with ``value`` plus optional seeded noise."""
    out = {}
    for name, shape in SHAPES.items():
        base = np.full(shape, value, dtype=np.float64)
        if rng is not None:
            base += rng.normal(0.0, scale, size=shape)
        out[name] = base.astype(np.float32)
    return out


def write_global(plan: Plan, keys: dict[str, Any], path: Path, tensors: dict[str, np.ndarray],
                 round_: int = 0, parent: str | None = None) -> artifact.Artifact:
    manifest = {"kind": "global", "round": round_, "signer": plan.coordinator.id, "parent_sha256": parent,
                "weights": "full", "contributors": [], "strategy": {"name": "init", "params": {}},
                "model": config_to_dict(plan.model), "created_at": GLOBAL_TIME, "expires_at": "2024-02-01T00:00:00Z"}
    return write_artifact(path, manifest=manifest, tensors=tensors, key=keys[plan.coordinator.id], plan=plan)


def update_manifest(plan: Plan, site: str, parent: str, *, round_: int = 1, num_examples: Any = 10,
                    weights: str = "full", created_at: str = "2024-01-02T10:00:00Z", **extra: Any) -> dict[str, Any]:
    manifest = {"kind": "update", "round": round_, "signer": site, "parent_sha256": parent, "weights": weights,
                "num_examples": num_examples, "metrics": {"val_dice": 0.5}, "model": config_to_dict(plan.model),
                "created_at": created_at}
    manifest.update(extra)
    return manifest


def write_update(plan: Plan, keys: dict[str, Any], path: Path, site: str, parent: str,
                 tensors: dict[str, np.ndarray], *, key_name: str | None = None, **manifest_fields: Any) -> Path:
    manifest = update_manifest(plan, site, parent, **manifest_fields)
    key = keys[key_name or site]
    if key_name and key_name != site:  # signed by a key the plan does not list for this signer
        manifest.update(federation_id=plan.federation_id, plan_sha256=plan.sha256)
        write_artifact(path, manifest=manifest, tensors=tensors, key=key, plan=None)
    else:
        write_artifact(path, manifest=manifest, tensors=tensors, key=key, plan=plan)
    return path


def write_nan_update(plan: Plan, keys: dict[str, Any], path: Path, site: str, parent: str,
                     tensors: dict[str, np.ndarray]) -> Path:
    """A compromised site signs a payload holding NaN (write_artifact itself refuses, so go around it)."""
    good = write_artifact(path, manifest=update_manifest(plan, site, parent), tensors=tensors, key=keys[site],
                          plan=plan)
    bad = {k: v.copy() for k, v in tensors.items()}
    bad["enc.weight"][0, 0] = np.nan
    payload = artifact.encode_payload(bad)
    manifest = dict(good.manifest, payload_sha256=hashlib.sha256(payload).hexdigest(), payload_bytes=len(payload))
    artifact._write_envelope(path, manifest, payload, keys[site])
    return path


def weighted_mean(models: list[dict[str, np.ndarray]], counts: list[int]) -> dict[str, np.ndarray]:
    return {k: np.average(np.stack([m[k].astype(np.float64) for m in models]), axis=0, weights=counts).astype(np.float32)
            for k in SHAPES}

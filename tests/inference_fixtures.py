"""Helpers shared by the inference tests: a tiny plan, a signed global, a small site dataset.

The site dataset is written directly with :func:`fedseg.data.dataset.write_case` on a hand-made
geometry (original grid 1 x 1 x 1.5 mm, stored grid 2 mm, cropped), so these tests do not depend on
the preprocessing pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedseg.configs.model import ModelConfig
from fedseg.configs.preprocess import PreprocessConfig
from fedseg.configs.training import TrainingConfig
from fedseg.configtools import config_to_dict
from fedseg.data.dataset import CaseRecord, write_case, write_dataset_json
from fedseg.federation.artifact import Kind, write_artifact
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.geometry import CaseGeometry
from fedseg.hashing import sha256_json
from fedseg.labels import MODALITIES
from fedseg.model.spec import initial_weights

TINY_MODEL = ModelConfig(widths=(4, 8), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)
TINY_TRAINING = TrainingConfig(patch_size=(8, 8, 8), batch_size=2, amp=False)
PREPROCESS = PreprocessConfig(spacing=(2.0, 2.0, 2.0), skull_strip="none")  # type: ignore[arg-type]

# Original scan (ITK x, y, z): 24 x 22 x 18 voxels of 1 x 1 x 1.5 mm, rotated 90 degrees about z.
ORIGINAL_SIZE = (24, 22, 18)
ORIGINAL_SPACING = (1.0, 1.0, 1.5)
ORIGINAL_ORIGIN = (-10.0, 5.0, 3.0)
ORIGINAL_DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
# Resampled grid: 2 mm, same origin and direction, 12 x 11 x 14 voxels; stored block = crop box below.
CROP_BOX = (1, 13, 1, 10, 2, 11)  # z0, z1, y0, y1, x0, x1 -> stored shape (12, 9, 9)
STORED_SHAPE = (12, 9, 9)


def tiny_plan(plan: Plan, **changes: object) -> Plan:
    """Return the fixture plan with the tiny model, training and preprocessing settings."""
    settings = {"model": TINY_MODEL, "training": TINY_TRAINING, "preprocessing": PREPROCESS, **changes}
    return plan.with_settings(**settings)


def write_global(plan: Plan, key: PrivateKey, path: Path, *, tensors: dict | None = None, seed: int = 0) -> Path:
    """Write a signed global (round 0) holding ``tensors`` (default: initial weights of the plan's model)."""
    manifest = {
        "kind": Kind.GLOBAL.value, "round": 0, "signer": plan.coordinator.id, "parent_sha256": None,
        "weights": "full", "model": config_to_dict(plan.model), "strategy": None, "contributors": [],
        "metrics": {}, "created_at": "2025-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
    }
    write_artifact(path, manifest=manifest, tensors=tensors or initial_weights(plan.model, seed), key=key, plan=plan)
    return path


def geometry() -> CaseGeometry:
    """Return the hand-made geometry described at the top of this module."""
    direction = np.asarray(ORIGINAL_DIRECTION).reshape(3, 3)
    z0, _, y0, _, x0, _ = CROP_BOX
    origin = np.asarray(ORIGINAL_ORIGIN) + direction @ (2.0 * np.asarray([x0, y0, z0], dtype=float))
    return CaseGeometry(
        spacing=(2.0, 2.0, 2.0), origin=tuple(float(v) for v in origin), direction=ORIGINAL_DIRECTION,
        crop_box=CROP_BOX, resampled_size=(12, 11, 14), original_size=ORIGINAL_SIZE,
        original_spacing=ORIGINAL_SPACING, original_origin=ORIGINAL_ORIGIN, original_direction=ORIGINAL_DIRECTION,
    )


def stored_label() -> np.ndarray:
    """Return a nested tumour on the stored grid: ET core, necrosis shell, oedema around (internal labels)."""
    z, y, x = np.ogrid[: STORED_SHAPE[0], : STORED_SHAPE[1], : STORED_SHAPE[2]]
    r = np.sqrt((z - 6.0) ** 2 + (y - 4.0) ** 2 + (x - 4.0) ** 2)
    label = np.zeros(STORED_SHAPE, dtype=np.uint8)
    label[r <= 3.5] = 2
    label[r <= 2.5] = 1
    label[r <= 1.5] = 3
    return label


def write_site_dataset(root: Path, case_ids: tuple[str, ...] = ("case-a", "case-b"), *,
                       conventions: tuple[str, ...] | None = None, channels: dict[str, int] | None = None,
                       modalities: tuple[str, ...] = MODALITIES, split: str = "val") -> Path:
    """Write a site dataset of identical-geometry cases; ``channels`` overrides a case's channel count."""
    rng = np.random.default_rng(0)
    records = []
    for i, cid in enumerate(case_ids):
        conv = conventions[i] if conventions else "brats2021"
        n = (channels or {}).get(cid, len(modalities))
        image = rng.normal(size=(n, *STORED_SHAPE)).astype(np.float32)
        write_case(root / "cases" / f"{cid}.h5", case_id=cid, image=image,
                   brain_mask=np.ones(STORED_SHAPE, np.uint8), geometry=geometry(), label=stored_label(),
                   label_convention=conv, dtype="float32")
        records.append(CaseRecord(id=cid, split=split, file=f"cases/{cid}.h5", has_label=True, label_convention=conv))
    prep = config_to_dict(PREPROCESS)
    write_dataset_json(root, {"modalities": list(modalities), "preprocessing": prep,
                              "config_sha256": sha256_json(prep)}, records)
    return root


def perfect_probabilities(label: np.ndarray) -> np.ndarray:
    """Return region probabilities (0.05 / 0.95) that reproduce an internal label map exactly."""
    wt, tc, et = label > 0, np.isin(label, (1, 3)), label == 3
    return np.stack([np.where(m, 0.95, 0.05) for m in (wt, tc, et)]).astype(np.float32)

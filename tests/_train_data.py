"""Tiny site datasets for the training tests: bright tumour blobs in noise, made at run time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.configtools import config_to_dict
from fedseg.data.dataset import CaseRecord, write_case, write_dataset_json
from fedseg.geometry import CaseGeometry
from fedseg.hashing import sha256_json
from fedseg.labels import MODALITIES

_EYE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def phantom(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return image [4, *shape] float32 and internal label: oedema shell (2), necrotic core (1), enhancing rim (3)."""
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    centre = [rng.uniform(0.35, 0.65) * s for s in shape]
    radius = rng.uniform(0.18, 0.26) * min(shape)
    d = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    label = np.zeros(shape, dtype=np.uint8)
    label[d < radius] = 2
    label[d < 0.6 * radius] = 3
    label[d < 0.35 * radius] = 1
    means = np.array([[0.0, -1.0, 0.5, -0.5], [0.0, 0.0, 2.0, 1.5], [0.0, 0.5, 1.5, 2.0], [0.0, 2.5, 1.0, 1.0]])
    image = means[label].transpose(3, 0, 1, 2).astype(np.float32)  # [4, Z, Y, X]
    image += rng.normal(0.0, 0.3, size=image.shape).astype(np.float32)
    return image, label


def make_dataset(root: Path, *, train: int = 2, val: int = 1, shape: tuple[int, int, int] = (24, 24, 24),
                 seed: int = 0, preprocessing: PreprocessConfig | None = None,
                 modalities: tuple[str, ...] = MODALITIES, nan_case: bool = False, test: int = 0) -> Path:
    """Write a site dataset with ``train`` + ``val`` (+ ``test``) phantom cases under ``root``; return ``root``."""
    rng = np.random.default_rng(seed)
    pre = preprocessing or PreprocessConfig()
    geometry = CaseGeometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=_EYE,
                            crop_box=(0, shape[0], 0, shape[1], 0, shape[2]), resampled_size=shape[::-1],
                            original_size=shape[::-1], original_spacing=(1.0, 1.0, 1.0),
                            original_origin=(0.0, 0.0, 0.0), original_direction=_EYE)
    records = []
    for i in range(train + val + test):
        case_id = f"case-{i:03d}"
        image, label = phantom(shape, rng)
        if nan_case:
            image[:] = np.nan
        write_case(root / "cases" / f"{case_id}.h5", case_id=case_id, image=image,
                   brain_mask=np.ones(shape, np.uint8), geometry=geometry, label=label, dtype="float32")
        records.append(CaseRecord(id=case_id, split="train" if i < train else "val" if i < train + val else "test", file=f"cases/{case_id}.h5"))
    pre_dict = config_to_dict(pre)
    write_dataset_json(root, {"modalities": list(modalities), "preprocessing": pre_dict,
                              "config_sha256": sha256_json(pre_dict), "failed": []}, records)
    return root


TINY_MODEL = {"widths": [4, 8], "kernels": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
              "convs_per_stage": 1}


def tiny_plan(plan, **training):  # noqa: ANN001, ANN201 - test helper
    """Return ``plan`` with a 2-stage, 4-8 channel U-Net and tiny CPU training settings (overridable)."""
    from fedseg.configs.model import ModelConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping

    settings = {"patch_size": [16, 16, 16], "batch_size": 2, "steps_per_round": 4, "learning_rate": 1e-2,
                "amp": False, "val_overlap": 0.25}
    settings.update(training)
    return plan.with_settings(model=config_from_mapping(ModelConfig, TINY_MODEL, "model"),
                              training=config_from_mapping(TrainingConfig, settings, "training"))

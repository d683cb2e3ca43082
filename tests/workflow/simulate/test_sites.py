"""Simulation members: ids from folder names, the model sized to the device, external sites checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.configs.model import ModelConfig
from fedseg.configs.preprocess import PreprocessConfig
from fedseg.errors import DatasetError
from fedseg.workflow.simulate.sites import _default_settings, check_inputs, site_ids
from tests._train_data import make_dataset


def test_ids_follow_folders_and_avoid_taken_ones(tmp_path: Path) -> None:
    dirs = [tmp_path / "hospital-a" / "data", tmp_path / "Hospital A", tmp_path / "coordinator"]
    assert site_ids(dirs) == ["hospital-a", "hospital-a-2", "coordinator-2"]
    assert site_ids([tmp_path / "site-x"], taken=["site-x"]) == ["site-x-2"]


def test_without_a_plan_the_cpu_gets_the_demo_model_and_a_gpu_the_default() -> None:
    said: list[str] = []
    model, training = _default_settings("cpu", said.append)
    assert model.widths == (16, 32, 64, 128) and training.patch_size == (32, 32, 32)
    assert "demo's small model" in said[-1]
    model, _ = _default_settings("cuda:0", said.append)
    assert model == ModelConfig() and "default model on cuda:0" in said[-1]


def test_external_site_preprocessed_otherwise_is_refused(tmp_path: Path) -> None:
    inside = make_dataset(tmp_path / "a", train=1, val=1, shape=(16, 16, 16))
    other = make_dataset(tmp_path / "x", train=1, val=1, shape=(16, 16, 16),
                         preprocessing=PreprocessConfig(spacing=(2.0, 2.0, 2.0)))
    with pytest.raises(DatasetError, match="other settings"):
        check_inputs([inside], [other])

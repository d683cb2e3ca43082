"""Checkpoint folders: tensors and optimizer state round-trip without pickle; old files are cleaned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedseg.configs.model import ModelConfig
from fedseg.errors import TrainingError
from fedseg.model.spec import build_model, state_to_numpy
from fedseg.train.checkpoint import load_checkpoint, optimizer_from_h5, save_checkpoint

MODEL = ModelConfig(widths=(2, 4), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)


def _stepped(optimizer_cls):  # noqa: ANN001, ANN202
    torch.manual_seed(0)
    model = build_model(MODEL)
    opt = optimizer_cls(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(1, 4, 8, 8, 8)).square().mean().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("optimizer_cls", [torch.optim.AdamW, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)])
def test_round_trip(tmp_path: Path, optimizer_cls) -> None:  # noqa: ANN001
    model, opt = _stepped(optimizer_cls)
    save_checkpoint(tmp_path, {"step": 2, "losses": [1.0, 0.5]}, state_to_numpy(model.state_dict()), opt.state_dict())
    save_checkpoint(tmp_path, {"step": 3, "losses": [1.0, 0.5]}, state_to_numpy(model.state_dict()), opt.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "optimizer-0000003.h5",
                                                          "weights-0000003.h5"]
    meta, weights = load_checkpoint(tmp_path)
    assert meta["step"] == 3 and meta["losses"] == [1.0, 0.5]
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(weights[name], tensor.numpy())
    fresh = optimizer_cls(build_model(MODEL).parameters(), lr=1e-2)
    restored = optimizer_from_h5(tmp_path / meta["optimizer"], fresh.state_dict()["param_groups"])
    fresh.load_state_dict(restored)
    original = opt.state_dict()["state"]
    for index, entries in original.items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(fresh.state_dict()["state"][index][key]), torch.as_tensor(value))


def test_missing_or_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text('{"format": "other"}')
    with pytest.raises(TrainingError, match="expected format"):
        load_checkpoint(tmp_path)

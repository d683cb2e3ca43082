"""Scratch tensor files of an aggregation round: exact round trips, ranges, privacy, cleanup."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from fedseg.workflow.coordinator.scratch import TensorFile, scratch_dir


def test_tensor_file_round_trips_whole_tensors_and_ranges(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {"w": rng.normal(size=(5, 7)).astype(np.float32), "h": rng.normal(size=9).astype(np.float16),
               "scalar": np.array(2.5, dtype=np.float32), "empty": np.zeros((0, 3), np.float32)}
    with TensorFile(tmp_path / "t.bin", tensors) as f:
        assert f.names == ["w", "h", "scalar", "empty"] and f.shape("w") == (5, 7)
        for name, value in tensors.items():
            got = f.read(name)
            assert got.dtype == value.dtype and got.shape == value.shape
            np.testing.assert_array_equal(got, value)
        np.testing.assert_array_equal(f.read_range("w", 3, 11), tensors["w"].reshape(-1)[3:11])
        np.testing.assert_array_equal(f.read_range("h", 4, 100), tensors["h"][4:])  # stop is clipped to the size
        assert f.read_range("empty", 0, 5).size == 0
        first = f.read_range("w", 0, 4).copy()
        np.testing.assert_array_equal(first, tensors["w"].reshape(-1)[:4])


def test_tensor_file_is_private_and_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    with TensorFile(path, {"x": np.ones(3, np.float32)}):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        TensorFile(path, {"x": np.ones(3, np.float32)})


def test_scratch_dir_is_private_and_removed(tmp_path: Path) -> None:
    with scratch_dir(tmp_path) as d:
        assert d.parent == tmp_path and d.name.startswith(".fedseg-scratch-")
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        TensorFile(d / "x.bin", {"x": np.ones(2, np.float32)}).close()
    assert not list(tmp_path.iterdir())

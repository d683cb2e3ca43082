"""Tampered case files are refused when opened: one DatasetError naming the file, nothing trained or written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.data.dataset import load_dataset
from fedseg.errors import DatasetError
from fedseg.federation.plan import write_plan
from fedseg.workflow.initial import write_initial_global
from tests._train_data import make_dataset, tiny_plan

runner = CliRunner()
SHAPE = (16, 16, 16)
_DROP = object()


def _tamper(path: Path, *, attrs_drop: tuple[str, ...] = (), **datasets: Any) -> None:
    """Rewrite case file ``path`` with some datasets replaced (an array, a (shape, dtype) pair) or dropped."""
    import h5py

    with h5py.File(path, "r") as f:
        arrays = {name: f[name][()] for name in f}
        attrs = {k: v for k, v in f.attrs.items() if k not in attrs_drop}
    path.unlink()
    with h5py.File(path, "w") as f:
        for name, value in {**arrays, **datasets}.items():
            if value is _DROP:
                continue
            if isinstance(value, tuple):  # declared shape only: chunked storage allocates nothing
                f.create_dataset(name, shape=value[0], dtype=value[1], chunks=(1, 32, 32, 32))
            else:
                f.create_dataset(name, data=value)
        f.attrs.update(attrs)


def _image(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(dtype)


def _bad_label() -> np.ndarray:
    label = np.zeros(SHAPE, np.uint8)
    label[15, 15, 15] = 7
    return label


TAMPERS: dict[str, tuple[dict[str, Any], str]] = {
    "label values": ({"label": _bad_label()}, r"label value 7 in slices .*expected internal labels 0\.\.3"),
    "short label": ({"label": np.zeros((16, 16, 8), np.uint8)}, r"label is uint8 \(16, 16, 8\); expected uint8 \(16, 16, 16\)"),
    "huge image": ({"image": ((4, 4096, 4096, 4096), "float32")}, r"axis in 4\.\.1024"),
    "1-voxel image": ({"image": _image((4, 1, 1, 1)), "label": np.zeros((1, 1, 1), np.uint8),
                       "brain_mask": np.ones((1, 1, 1), np.uint8)}, r"image grid \(1, 1, 1\)"),
    "integer image": ({"image": np.zeros((4, *SHAPE), np.int16)}, "image dtype int16; expected float16 or float32"),
    "3 channels": ({"image": _image((3, *SHAPE))}, r"expected 4 channels \(t1, t1ce, t2, flair\)"),
    "2-D image": ({"image": _image((4, 16, 16))}, r"expected \[C, Z, Y, X\]"),
    "string image": ({"image": np.array([b"not", b"an", b"image"])}, "image dtype |S5; expected float"),
    "no brain mask": ({"brain_mask": _DROP}, "expected an HDF5 dataset 'brain_mask', found missing"),
    "float label": ({"label": np.zeros(SHAPE, np.float32)}, "label is float32"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_case_is_refused_on_open(tmp_path: Path, name: str) -> None:
    root = make_dataset(tmp_path / "d", train=1, val=0, shape=SHAPE)
    changes, message = TAMPERS[name]
    _tamper(root / "cases" / "case-000.h5", **changes)
    ds = load_dataset(root)
    with pytest.raises(DatasetError, match=message) as info, ds.reader(ds.cases[0]) as reader:
        reader.has_label  # noqa: B018 - opening is what is checked
    assert "case-000.h5" in str(info.value) and "\n" not in str(info.value)


def test_missing_or_malformed_geometry_is_refused(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", train=1, val=0, shape=SHAPE)
    _tamper(root / "cases" / "case-000.h5", attrs_drop=("spacing",))
    ds = load_dataset(root)
    with pytest.raises(DatasetError, match="missing geometry attribute 'spacing'"):
        ds.reader(ds.cases[0]).shape  # noqa: B018
    root = make_dataset(tmp_path / "e", train=1, val=0, shape=SHAPE)
    import h5py

    with h5py.File(root / "cases" / "case-000.h5", "r+") as f:
        f.attrs["crop_box"] = np.array([0.5, 1.0])
    ds = load_dataset(root)
    with pytest.raises(DatasetError, match="geometry attribute 'crop_box' is float64 \\(2,\\); expected 6 finite integers"):
        ds.reader(ds.cases[0]).shape  # noqa: B018


@pytest.mark.parametrize("kind", ["folder", "text"])
def test_a_case_file_that_is_a_folder_or_not_hdf5_is_one_line(tmp_path: Path, kind: str) -> None:
    root = make_dataset(tmp_path / "d", train=1, val=0, shape=SHAPE)
    case = root / "cases" / "case-000.h5"
    case.unlink()
    if kind == "folder":
        case.mkdir()
    else:
        case.write_text("hello")
    ds = load_dataset(root)
    with pytest.raises(DatasetError, match="is a folder" if kind == "folder" else "not an HDF5 file") as info:
        ds.reader(ds.cases[0]).shape  # noqa: B018
    assert "\n" not in str(info.value) and "errno" not in str(info.value)


def test_an_honest_case_still_opens_and_a_pickled_reader_keeps_the_verdict(tmp_path: Path) -> None:
    import pickle

    ds = load_dataset(make_dataset(tmp_path / "d", train=1, val=0, shape=SHAPE))
    reader = ds.reader(ds.cases[0])
    assert reader.shape == SHAPE and reader.num_channels == 4
    copy = pickle.loads(pickle.dumps(reader))  # noqa: S301 - our own object, as DataLoader workers get it
    assert copy._checked and copy.shape == SHAPE
    reader.close()


@pytest.fixture
def fed(plan, site_keys, tmp_path: Path):
    p = tiny_plan(plan, steps_per_round=2)
    write_plan(p, tmp_path / "plan.toml")
    g = write_initial_global(p, site_keys["coordinator"], tmp_path)
    return tmp_path / "plan.toml", g


@pytest.mark.parametrize("name", ["label values", "short label", "huge image", "1-voxel image", "integer image",
                                  "3 channels", "2-D image", "string image"])
def test_train_local_and_evaluate_refuse_a_tampered_dataset(fed, keydir: Path, tmp_path: Path, name: str) -> None:
    plan_path, g = fed
    data = make_dataset(tmp_path / "data", train=1, val=1, shape=SHAPE)
    changes, message = TAMPERS[name]
    _tamper(data / "cases" / "case-001.h5", **changes)
    out = tmp_path / "site-a-r0001.fedseg"
    result = runner.invoke(app, ["train-local", "--plan", str(plan_path), "--global", str(g), "--data", str(data),
                                 "--key", str(keydir / "site-a.key"), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "case-001.h5" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name(out.name + ".ckpt").exists()
    result = runner.invoke(app, ["evaluate", "--plan", str(plan_path), "--model", str(g), "--data", str(data),
                                 "--split", "val", "--device", "cpu", "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 1, result.output
    assert "case-001.h5" in result.stderr and "Traceback" not in result.output


def test_a_dataset_checks_each_case_file_once_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    from fedseg.data import case_check

    calls = []
    real = case_check.check_case_file
    monkeypatch.setattr(case_check, "check_case_file", lambda *a: (calls.append(a[1]), real(*a)))
    ds = load_dataset(make_dataset(tmp_path / "d", train=1, val=0, shape=SHAPE))
    for _ in range(3):
        with ds.reader(ds.cases[0]) as reader:
            assert reader.shape == SHAPE
    assert len(calls) == 1
    _tamper(ds.root / "cases" / "case-000.h5", label=_bad_label())  # a new file: checked again, and refused
    with pytest.raises(DatasetError, match="label value 7"), ds.reader(ds.cases[0]) as reader:
        reader.shape  # noqa: B018
    assert len(calls) == 2

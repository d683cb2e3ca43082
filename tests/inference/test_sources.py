"""Cases to predict or score: site datasets recognised, stored cases read lazily, whole-input problems refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedseg.data.dataset import load_dataset
from fedseg.errors import DatasetError
from fedseg.inference.sources import dataset_inputs, is_site_dataset, reader_inputs
from fedseg.workflow.model_io import inference_spec
from tests.inference_fixtures import STORED_SHAPE, geometry, stored_label, tiny_plan, write_site_dataset


def test_is_site_dataset(tmp_path: Path) -> None:
    assert is_site_dataset(write_site_dataset(tmp_path / "data"))
    assert not is_site_dataset(tmp_path / "missing")
    for name, text in (("other", json.dumps({"format": "something-else"})), ("broken", "{not json"),
                       ("list", "[1, 2]")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text(text)
        assert not is_site_dataset(tmp_path / name), name


def test_reader_inputs_read_only_when_loaded(tmp_path: Path) -> None:
    dataset = load_dataset(write_site_dataset(tmp_path / "data", ("case-a", "case-b"),
                                              conventions=("brats2021", "brats2023")))
    readers = [dataset.reader(c) for c in dataset.cases]
    seen: list[tuple[str, str]] = []

    def check(image: np.ndarray, case_id: str, where: str) -> np.ndarray:
        seen.append((case_id, Path(where).name))
        return image

    cases = reader_inputs(readers, check=check)
    assert [c.case_id for c in cases] == ["case-a", "case-b"]  # ids default to the file names
    assert cases[0].source == str(tmp_path / "data" / "cases" / "case-a.h5") and cases[0].problem is None
    assert seen == []  # nothing read yet
    prepared = cases[1].load()
    assert seen == [("case-b", "case-b.h5")]
    assert prepared.image.shape == (4, *STORED_SHAPE) and prepared.convention == "brats2023"
    np.testing.assert_array_equal(prepared.label, stored_label())
    assert prepared.geometry == geometry()
    assert [c.case_id for c in reader_inputs(readers, ["x", "y"])] == ["x", "y"]


def test_dataset_inputs_take_the_split_and_check_channels(plan, tmp_path: Path) -> None:
    p = tiny_plan(plan)
    dataset = load_dataset(write_site_dataset(tmp_path / "data", ("bad", "good"), channels={"bad": 3}))
    assert dataset_inputs(dataset, inference_spec(p), "test") == []
    bad, good = dataset_inputs(dataset, inference_spec(p), "val")
    assert good.load().image.shape[0] == 4
    # the case file itself is checked when opened (data.case_check), before inference sees it
    with pytest.raises(DatasetError, match=r"case bad .*expected 4 channels \(t1, t1ce, t2, flair\).*shape \(3,"):
        bad.load()


def test_dataset_with_other_modalities_is_rejected(plan, tmp_path) -> None:
    p = tiny_plan(plan)
    data = write_site_dataset(tmp_path / "data", modalities=("t1", "t1ce", "flair"))
    with pytest.raises(DatasetError, match=r"modalities \['t1', 't1ce', 'flair'\].*expects \['t1', 't1ce', 't2', 'flair'\]"):
        dataset_inputs(load_dataset(data), inference_spec(p))

"""Prediction library: writing label maps on the original grid, skips, failures and interruptions
(no pipeline needed: the dataset is hand-made; fixtures ``small`` and ``perfect`` in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from fedseg.errors import ConfigError, DeviceError
from fedseg.imaging.inverse import to_original_grid
from fedseg.inference.predict import PredictOptions, predict_cases, prepare_output_dir
from fedseg.workflow.model_io import inference_spec, load_global_model
from fedseg.workflow.predict_inputs import collect_inputs
from tests.inference_fixtures import (
    ORIGINAL_DIRECTION,
    ORIGINAL_ORIGIN,
    ORIGINAL_SIZE,
    ORIGINAL_SPACING,
    geometry,
    stored_label,
    tiny_plan,
    write_global,
    write_site_dataset,
)

torch.set_num_threads(1)
CPU = PredictOptions(device="cpu")


def _read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img


def test_labels_land_on_the_original_grid_in_the_input_convention(small, perfect, tmp_path) -> None:
    p, model, _, data = small
    out = tmp_path / "out"
    spec = inference_spec(p)
    outcomes = predict_cases(model, spec, collect_inputs([data], spec), out, PredictOptions(device="cpu", probabilities=True))
    assert [o.status for o in outcomes] == ["predicted", "predicted"]
    expected = sitk.GetArrayFromImage(to_original_grid(stored_label(), geometry(), interpolator="nearest"))
    for cid, et in (("case-a", 4), ("case-b", 3)):
        arr, img = _read(out / f"{cid}.nii.gz")
        assert img.GetSize() == ORIGINAL_SIZE and img.GetSpacing() == pytest.approx(ORIGINAL_SPACING)
        assert img.GetOrigin() == pytest.approx(ORIGINAL_ORIGIN)
        assert img.GetDirection() == pytest.approx(ORIGINAL_DIRECTION)
        assert arr.dtype == np.uint8 and set(np.unique(arr)) == {0, 1, 2, et}
        internal = np.where(arr == 4, 3, arr)
        # probabilities are mapped linearly and thresholded there: same tumour as the nearest-mapped label
        # up to boundary voxels
        agree = np.mean((internal > 0) == (expected > 0))
        assert agree > 0.97 and (internal > 0).sum() == pytest.approx((expected > 0).sum(), rel=0.2)
        probs, pimg = _read(out / f"{cid}_probs.nii.gz")
        assert pimg.GetDimension() == 4 and probs.shape == (3, *reversed(ORIGINAL_SIZE))
        assert probs.dtype == np.float32 and 0.0 <= probs.min() and probs.max() <= 0.95 + 1e-6
    volumes = outcomes[0].volumes_ml
    voxel_ml = np.prod(ORIGINAL_SPACING) / 1000
    arr, _ = _read(out / "case-a.nii.gz")
    assert volumes["WT"] == pytest.approx((arr > 0).sum() * voxel_ml, abs=1e-3)
    assert volumes["ET"] == pytest.approx((arr == 4).sum() * voxel_ml, abs=1e-3)
    assert volumes["WT"] >= volumes["TC"] >= volumes["ET"] > 0


def test_real_network_runs_end_to_end_on_a_dataset(small, tmp_path) -> None:
    p, model, _, data = small
    spec = inference_spec(p)
    outcomes = predict_cases(model, spec, collect_inputs([data], spec), tmp_path / "out", PredictOptions(device="cpu", mirror=True))
    assert [o.status for o in outcomes] == ["predicted", "predicted"]
    arr, img = _read(tmp_path / "out" / "case-a.nii.gz")
    assert img.GetSize() == ORIGINAL_SIZE and set(np.unique(arr)) <= {0, 1, 2, 4}


def test_finished_cases_are_skipped_and_an_interrupted_run_leaves_no_partial_file(small, perfect, tmp_path, monkeypatch) -> None:
    p, model, _, data = small
    out = tmp_path / "out"
    import fedseg.imaging.io as io_mod

    real = io_mod.sitk.WriteImage if hasattr(io_mod, "sitk") else sitk.WriteImage
    calls = {"n": 0}

    def flaky(image, path, *args):  # write the temp file half-way, then die as if killed
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"\x1f\x8b partial")
            raise KeyboardInterrupt
        return real(image, path, *args)

    monkeypatch.setattr(sitk, "WriteImage", flaky)
    with pytest.raises(KeyboardInterrupt):
        predict_cases(model, inference_spec(p), collect_inputs([data], inference_spec(p)), out, CPU)
    assert sorted(f.name for f in out.iterdir()) == ["case-a.nii.gz"]  # no temp, no partial case-b
    monkeypatch.setattr(sitk, "WriteImage", real)
    (out / ".case-b.nii.gz.stale.tmp").write_bytes(b"left by a crash")
    before = (out / "case-a.nii.gz").stat().st_mtime_ns
    outcomes = predict_cases(model, inference_spec(p), collect_inputs([data], inference_spec(p)), out, CPU)
    assert [o.status for o in outcomes] == ["skipped", "predicted"]
    assert (out / "case-a.nii.gz").stat().st_mtime_ns == before
    assert sorted(f.name for f in out.iterdir()) == ["case-a.nii.gz", "case-b.nii.gz"]


def test_a_failing_case_is_reported_and_the_others_go_on(plan, site_keys, tmp_path) -> None:
    p = tiny_plan(plan)
    model = load_global_model(p, write_global(p, site_keys["coordinator"], tmp_path / "g.fedseg"))
    data = write_site_dataset(tmp_path / "data", ("bad", "good"), channels={"bad": 3})
    outcomes = predict_cases(model, inference_spec(p), collect_inputs([data], inference_spec(p)), tmp_path / "out", CPU)
    assert [o.status for o in outcomes] == ["failed", "predicted"]
    assert "case bad" in outcomes[0].error and "expected 4 channels" in outcomes[0].error
    assert "t1, t1ce, t2, flair" in outcomes[0].error
    assert not (tmp_path / "out" / "bad.nii.gz").exists()


def test_output_folder_that_is_a_file_and_bad_options(tmp_path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ConfigError, match="output folder is a file"):
        prepare_output_dir(tmp_path / "out")
    with pytest.raises(ConfigError, match="overlap"):
        PredictOptions(overlap=1.0)
    with pytest.raises(DeviceError, match="device"):
        PredictOptions(device="tpu")


def test_duplicate_and_unsafe_case_ids_fail_alone(small, perfect, tmp_path) -> None:
    p, model, _, data = small
    cases = collect_inputs([data, data], inference_spec(p))
    assert [c.problem is None for c in cases] == [True, True, False, False]
    assert "duplicate case id 'case-a'" in cases[2].problem
    evil = [cases[0].__class__("../evil", "x", cases[0].load)]
    (outcome,) = predict_cases(model, inference_spec(p), evil, tmp_path / "out", CPU)
    assert outcome.status == "failed" and "safe file name" in outcome.error
    assert not (tmp_path / "evil.nii.gz").exists()


def test_raw_case_missing_a_modality_fails_alone_and_raw_inputs_are_not_modified(small, tmp_path) -> None:
    p, model, _, _ = small
    raw = tmp_path / "raw"
    rng = np.random.default_rng(1)
    for cid, modalities in (("ok", ("t1", "t1ce", "t2", "flair")), ("bad", ("t1", "t1ce", "t2"))):
        (raw / cid).mkdir(parents=True)
        for m in modalities:
            img = sitk.GetImageFromArray((rng.uniform(50, 150, size=(14, 16, 12))).astype(np.float32))
            img.SetSpacing((1.5, 1.5, 1.5))
            sitk.WriteImage(img, str(raw / cid / f"{cid}_{m}.nii.gz"))
    before = sorted((f.name, f.stat().st_mtime_ns) for f in raw.rglob("*"))
    spec = inference_spec(p)
    outcomes = {o.case_id: o for o in predict_cases(model, spec, collect_inputs([raw], spec), tmp_path / "out", CPU)}
    assert outcomes["bad"].status == "failed" and "missing modality flair" in outcomes["bad"].error
    assert outcomes["ok"].status == "predicted", outcomes["ok"].error
    arr, img = _read(tmp_path / "out" / "ok.nii.gz")
    assert img.GetSize() == (12, 16, 14) and img.GetSpacing() == pytest.approx((1.5, 1.5, 1.5))
    assert sorted((f.name, f.stat().st_mtime_ns) for f in raw.rglob("*")) == before

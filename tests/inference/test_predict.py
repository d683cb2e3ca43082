"""Prediction library: model verification, writing label maps on the original grid, skips, failures,
interruptions, and model evaluation on a site dataset (no pipeline needed: the dataset is hand-made)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from fedseg.data.dataset import load_dataset
from fedseg.errors import ArtifactError, ConfigError, DatasetError
from fedseg.imaging.inverse import to_original_grid
from fedseg.inference import evaluate_model as evaluate_mod
from fedseg.inference import predict as predict_mod
from fedseg.inference.evaluate_model import evaluate_model
from fedseg.inference.predict import PredictOptions, load_global_model, predict_cases, prepare_output_dir
from fedseg.inference.sources import collect_inputs, dataset_inputs
from fedseg.model.config import ModelConfig
from fedseg.model.spec import initial_weights
from tests.inference_fixtures import (
    ORIGINAL_DIRECTION,
    ORIGINAL_ORIGIN,
    ORIGINAL_SIZE,
    ORIGINAL_SPACING,
    geometry,
    perfect_probabilities,
    stored_label,
    tiny_plan,
    write_global,
    write_site_dataset,
)

torch.set_num_threads(1)
CPU = PredictOptions(device="cpu")


@pytest.fixture
def small(plan, site_keys, tmp_path):
    """(plan, verified model, global path, dataset folder)."""
    p = tiny_plan(plan)
    path = write_global(p, site_keys["coordinator"], tmp_path / "global.fedseg")
    return p, load_global_model(p, path), path, write_site_dataset(tmp_path / "data", conventions=("brats2021", "brats2023"))


@pytest.fixture
def perfect(monkeypatch):
    """Replace the network by probabilities that reproduce the stored label exactly."""
    fake = lambda *a, **k: perfect_probabilities(stored_label())  # noqa: E731
    monkeypatch.setattr(predict_mod, "predict_probabilities", fake)
    monkeypatch.setattr(evaluate_mod, "predict_probabilities", fake)


def _read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img


def test_model_is_verified_and_mismatched_tensors_are_rejected(plan, site_keys, tmp_path) -> None:
    p = tiny_plan(plan)
    model = load_global_model(p, write_global(p, site_keys["coordinator"], tmp_path / "ok.fedseg"))
    assert not model.training and sum(t.numel() for t in model.parameters()) > 0
    other = ModelConfig(widths=(4, 8, 16), kernels=((3, 3, 3),) * 3, strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
                        convs_per_stage=1)
    bad = write_global(p, site_keys["coordinator"], tmp_path / "bad.fedseg", tensors=initial_weights(other, 0))
    with pytest.raises(ArtifactError, match="bad.fedseg"):
        load_global_model(p, bad)
    tampered = tmp_path / "tampered.fedseg"
    data = bytearray((tmp_path / "ok.fedseg").read_bytes())
    data[-20] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        load_global_model(p, tampered)


def test_labels_land_on_the_original_grid_in_the_input_convention(small, perfect, tmp_path) -> None:
    p, model, _, data = small
    out = tmp_path / "out"
    outcomes = predict_cases(model, p, collect_inputs([data], p), out, PredictOptions(device="cpu", probabilities=True))
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
    outcomes = predict_cases(model, p, collect_inputs([data], p), tmp_path / "out", PredictOptions(device="cpu", mirror=True))
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
        predict_cases(model, p, collect_inputs([data], p), out, CPU)
    assert sorted(f.name for f in out.iterdir()) == ["case-a.nii.gz"]  # no temp, no partial case-b
    monkeypatch.setattr(sitk, "WriteImage", real)
    (out / ".case-b.nii.gz.stale.tmp").write_bytes(b"left by a crash")
    before = (out / "case-a.nii.gz").stat().st_mtime_ns
    outcomes = predict_cases(model, p, collect_inputs([data], p), out, CPU)
    assert [o.status for o in outcomes] == ["skipped", "predicted"]
    assert (out / "case-a.nii.gz").stat().st_mtime_ns == before
    assert sorted(f.name for f in out.iterdir()) == ["case-a.nii.gz", "case-b.nii.gz"]


def test_a_failing_case_is_reported_and_the_others_go_on(plan, site_keys, tmp_path) -> None:
    p = tiny_plan(plan)
    model = load_global_model(p, write_global(p, site_keys["coordinator"], tmp_path / "g.fedseg"))
    data = write_site_dataset(tmp_path / "data", ("bad", "good"), channels={"bad": 3})
    outcomes = predict_cases(model, p, collect_inputs([data], p), tmp_path / "out", CPU)
    assert [o.status for o in outcomes] == ["failed", "predicted"]
    assert "case bad" in outcomes[0].error and "expected 4 channels" in outcomes[0].error
    assert "t1, t1ce, t2, flair" in outcomes[0].error
    assert not (tmp_path / "out" / "bad.nii.gz").exists()


def test_dataset_with_other_modalities_is_rejected(plan, tmp_path) -> None:
    p = tiny_plan(plan)
    data = write_site_dataset(tmp_path / "data", modalities=("t1", "t1ce", "flair"))
    with pytest.raises(DatasetError, match=r"modalities \['t1', 't1ce', 'flair'\].*expects \['t1', 't1ce', 't2', 'flair'\]"):
        dataset_inputs(load_dataset(data), p)


def test_output_folder_that_is_a_file_and_bad_options(tmp_path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ConfigError, match="output folder is a file"):
        prepare_output_dir(tmp_path / "out")
    with pytest.raises(ConfigError, match="overlap"):
        PredictOptions(overlap=1.0)
    with pytest.raises(ConfigError, match="device"):
        PredictOptions(device="tpu")


def test_duplicate_and_unsafe_case_ids_fail_alone(small, perfect, tmp_path) -> None:
    p, model, _, data = small
    cases = collect_inputs([data, data], p)
    assert [c.problem is None for c in cases] == [True, True, False, False]
    assert "duplicate case id 'case-a'" in cases[2].problem
    evil = [cases[0].__class__("../evil", "x", cases[0].load)]
    (outcome,) = predict_cases(model, p, evil, tmp_path / "out", CPU)
    assert outcome.status == "failed" and "safe file name" in outcome.error
    assert not (tmp_path / "evil.nii.gz").exists()


def test_evaluate_model_scores_on_the_stored_grid_and_writes_nothing(small, perfect, tmp_path) -> None:
    p, model, path, data = small
    before = sorted(str(f) for f in tmp_path.rglob("*"))
    result = evaluate_model(p, path, data, "val", options=CPU)
    assert sorted(str(f) for f in tmp_path.rglob("*")) == before
    assert [c.case_id for c in result.cases] == ["case-a", "case-b"] and result.ok
    for case in result.cases:
        for region in ("WT", "TC", "ET"):
            assert case.metrics[region]["dice"] == pytest.approx(1.0)
            assert case.metrics[region]["hd95"] == pytest.approx(0.0)
    # ref volume in ml on the 2 mm stored grid: voxels * 8 mm^3
    assert result.cases[0].metrics["WT"]["ref_ml"] == pytest.approx((stored_label() > 0).sum() * 8 / 1000)
    assert result.settings["split"] == "val" and result.settings["source"] == "model"
    with pytest.raises(DatasetError, match="split 'test' holds no case"):
        evaluate_model(p, path, data, "test", options=CPU)


def test_evaluate_model_lesion_wise_through_the_same_scoring(small, perfect) -> None:
    from fedseg.metrics import LesionDefinition, MetricSet, ScoringOptions

    p, _, path, data = small
    scoring = ScoringOptions(metrics=MetricSet.BOTH, definition=LesionDefinition.BRATS)
    result = evaluate_model(p, path, data, "val", options=CPU, scoring=scoring)
    assert result.settings["metrics"] == "both" and result.settings["lesion_definition"] == "brats"
    for case in result.cases:
        assert case.metrics["WT"]["dice"] == pytest.approx(1.0)  # legacy still there
        wt = case.lesionwise["WT"]
        assert (wt["dice"], wt["hd95"], wt["fp"], wt["missed"]) == (1.0, 0.0, 0, 0) and wt["matched"] >= 1


def test_evaluate_model_with_the_real_network(small) -> None:
    p, _, path, data = small
    result = evaluate_model(p, path, data, "all", options=CPU)
    assert len(result.cases) == 2 and not result.failures
    assert all(0.0 <= c.metrics["WT"]["dice"] <= 1.0 for c in result.cases)


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
    outcomes = {o.case_id: o for o in predict_cases(model, p, collect_inputs([raw], p), tmp_path / "out", CPU)}
    assert outcomes["bad"].status == "failed" and "missing modality flair" in outcomes["bad"].error
    assert outcomes["ok"].status == "predicted", outcomes["ok"].error
    arr, img = _read(tmp_path / "out" / "ok.nii.gz")
    assert img.GetSize() == (12, 16, 14) and img.GetSpacing() == pytest.approx((1.5, 1.5, 1.5))
    assert sorted((f.name, f.stat().st_mtime_ns) for f in raw.rglob("*")) == before

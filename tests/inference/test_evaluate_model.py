"""Model evaluation on a site dataset split: every metric on the stored grid, nothing written, failures alone."""

from __future__ import annotations

import pytest
import torch

from fedseg.errors import DatasetError
from fedseg.inference.evaluate_model import evaluate_model
from fedseg.inference.predict import PredictOptions
from fedseg.workflow.model_io import inference_spec
from tests.inference_fixtures import stored_label, write_site_dataset

torch.set_num_threads(1)
CPU = PredictOptions(device="cpu")


def test_evaluate_model_scores_on_the_stored_grid_and_writes_nothing(small, perfect, tmp_path) -> None:
    p, model, path, data = small
    before = sorted(str(f) for f in tmp_path.rglob("*"))
    result = evaluate_model(model, inference_spec(p), data, "val", model_name=str(path), options=CPU)
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
        evaluate_model(model, inference_spec(p), data, "test", model_name=str(path), options=CPU)


def test_evaluate_model_lesion_wise_through_the_same_scoring(small, perfect) -> None:
    from fedseg.metrics import LesionDefinition, MetricSet, ScoringOptions

    p, model, path, data = small
    scoring = ScoringOptions(metrics=MetricSet.BOTH, definition=LesionDefinition.BRATS)
    result = evaluate_model(model, inference_spec(p), data, "val", model_name=str(path), options=CPU, scoring=scoring)
    assert result.settings["metrics"] == "both" and result.settings["lesion_definition"] == "brats"
    for case in result.cases:
        assert case.metrics["WT"]["dice"] == pytest.approx(1.0)  # legacy still there
        wt = case.lesionwise["WT"]
        assert (wt["dice"], wt["hd95"], wt["fp"], wt["missed"]) == (1.0, 0.0, 0, 0) and wt["matched"] >= 1


def test_evaluate_model_with_the_real_network(small) -> None:
    p, model, path, data = small
    result = evaluate_model(model, inference_spec(p), data, "all", model_name=str(path), options=CPU)
    assert len(result.cases) == 2 and not result.failures
    assert all(0.0 <= c.metrics["WT"]["dice"] <= 1.0 for c in result.cases)


def test_a_case_that_cannot_be_read_fails_alone(small, perfect, tmp_path) -> None:
    p, model, path, _ = small
    data = write_site_dataset(tmp_path / "two", ("bad", "good"), channels={"bad": 3})
    seen: list[tuple[int, int]] = []
    result = evaluate_model(model, inference_spec(p), data, "val", model_name="global.fedseg", options=CPU,
                            on_case=lambda done, total: seen.append((done, total)))
    assert [c.case_id for c in result.cases] == ["good"] and not result.ok
    (failure,) = result.failures
    assert failure.case_id == "bad" and "expected 4 channels" in failure.message
    assert result.cases[0].pred == "model global.fedseg" and result.settings["model"] == "global.fedseg"
    assert result.cases[0].truth.endswith("good.h5")
    assert seen == [(1, 2), (2, 2)]


def test_validation_and_the_simulation_score_what_evaluate_reports(small, tmp_path) -> None:
    # One scorer, one window: train-local's validation and fedseg simulate's scores equal fedseg evaluate's
    # Dice for the same weights and cases (the training patch at the plan's overlap, nothing larger).
    import numpy as np

    from fedseg.data.dataset import load_dataset
    from fedseg.model.spec import state_to_numpy
    from fedseg.train.validate import validate
    from fedseg.workflow.simulate.scoring import evaluate_weights
    from fedseg.workflow.simulate.sites import Site

    p, model, _, data = small
    dataset = load_dataset(data)
    result = evaluate_model(model, inference_spec(p), data, "val", model_name="m", options=CPU)
    reported = {r: float(np.mean([c.metrics[r]["dice"] for c in result.cases])) for r in ("WT", "TC", "ET")}
    assert 0.0 < reported["WT"] < 1.0  # the random network makes a non-trivial map
    validated = validate(model, [dataset.reader(c) for c in dataset.split("val")], patch_size=p.training.patch_size,
                         overlap=p.training.val_overlap)
    simulated = evaluate_weights(p, state_to_numpy(model.state_dict()), [Site("s", data)], "val")["dice"]
    for region in ("WT", "TC", "ET"):
        assert validated[region] == pytest.approx(reported[region], abs=1e-9)
        assert simulated[region] == pytest.approx(reported[region], abs=1e-9)


def test_a_window_larger_than_the_training_patch_is_another_model() -> None:
    # Why validation never scores whole volumes: instance norms take their statistics over the window.
    import numpy as np

    from fedseg.configs.model import ModelConfig
    from fedseg.inference.sliding_window import sliding_window_predict
    from fedseg.model.unet import UNet3D

    config = ModelConfig(widths=(4, 8), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)
    torch.manual_seed(0)
    model = UNet3D(config)
    image = np.random.default_rng(0).normal(size=(4, 16, 16, 16)).astype(np.float32)
    image[:, :8] *= 3.0  # one half of the volume brighter: window statistics differ from the volume's
    patched = sliding_window_predict(model, image, patch_size=(8, 8, 8), overlap=0.5)
    whole = sliding_window_predict(model, image, patch_size=(16, 16, 16))
    assert np.abs(patched - whole).max() > 1e-2


def test_batched_windows_give_the_probabilities_of_one_window_at_a_time() -> None:
    import numpy as np

    from fedseg.configs.model import ModelConfig
    from fedseg.inference.predict import windows_per_pass
    from fedseg.inference.sliding_window import sliding_window_predict
    from fedseg.model.unet import UNet3D

    assert (windows_per_pass((32, 32, 32)), windows_per_pass((64, 64, 64)), windows_per_pass((96, 96, 96))) == (4, 1, 1)
    config = ModelConfig(widths=(4, 8), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)
    torch.manual_seed(0)
    model = UNet3D(config)
    image = np.random.default_rng(1).normal(size=(4, 14, 12, 18)).astype(np.float32)
    one = sliding_window_predict(model, image, patch_size=(8, 8, 8), overlap=0.5, batch_size=1)
    batched = sliding_window_predict(model, image, patch_size=(8, 8, 8), overlap=0.5, batch_size=windows_per_pass((8, 8, 8)))
    np.testing.assert_allclose(batched, one, atol=1e-5)

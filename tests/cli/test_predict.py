"""`fedseg predict` and `fedseg evaluate --plan/--model/--data` through the CLI (exit codes, messages, files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.plan import write_plan
from tests.inference_fixtures import tiny_plan, write_global, write_site_dataset

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture
def setup(plan, site_keys, tmp_path):
    """(plan.toml, global model, dataset folder) with the tiny model."""
    p = tiny_plan(plan)
    write_plan(p, tmp_path / "plan.toml")
    model = write_global(p, site_keys["coordinator"], tmp_path / "global.fedseg")
    data = write_site_dataset(tmp_path / "data", ("c1", "c2"))
    return tmp_path / "plan.toml", model, data


def _predict(*args: object):
    return runner.invoke(app, ["predict", *map(str, args), "--device", "cpu"])


def test_predict_writes_label_maps_and_a_volume_table(setup, tmp_path) -> None:
    plan, model, data = setup
    out = tmp_path / "seg"
    result = _predict(data, "--plan", plan, "--model", model, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Predicted tumour volumes" in result.stdout and "c1" in result.stdout and "WT" in result.stdout
    assert sorted(f.name for f in out.iterdir()) == ["c1.nii.gz", "c2.nii.gz"]
    again = _predict(data, "--plan", plan, "--model", model, "--out", out, "--json")
    assert again.exit_code == 0
    rows = json.loads(again.stdout)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]


def test_model_failing_verification_writes_nothing(setup, tmp_path) -> None:
    plan, model, data = setup
    data_bytes = bytearray(model.read_bytes())
    data_bytes[-10] ^= 0x01
    bad = tmp_path / "bad.fedseg"
    bad.write_bytes(bytes(data_bytes))
    out = tmp_path / "seg"
    result = _predict(data, "--plan", plan, "--model", bad, "--out", out)
    assert result.exit_code == 1
    assert "bad.fedseg" in result.stderr
    assert not out.exists()


def test_model_of_another_architecture_is_a_clear_error(plan, site_keys, setup, tmp_path) -> None:
    plan_path, _, data = setup
    from fedseg.configs.model import ModelConfig
    from fedseg.federation.plan import load_plan
    from fedseg.model.spec import initial_weights

    other = ModelConfig(widths=(2, 4), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)
    wrong = write_global(load_plan(plan_path), site_keys["coordinator"], tmp_path / "wrong.fedseg",
                         tensors=initial_weights(other, 0))
    result = _predict(data, "--plan", plan_path, "--model", wrong, "--out", tmp_path / "seg")
    assert result.exit_code == 1
    assert "wrong.fedseg" in result.stderr and "shape" in result.stderr
    assert not (tmp_path / "seg").exists()


def test_output_among_the_inputs_is_refused_and_nothing_is_written(setup, tmp_path) -> None:
    plan, model, data = setup
    before = sorted(str(f) for f in data.rglob("*"))
    for out in (data, data / "cases"):
        result = _predict(data, "--plan", plan, "--model", model, "--out", out)
        assert result.exit_code == 1 and "refusing" in result.stderr, (out, result.output)
    assert sorted(str(f) for f in data.rglob("*")) == before


def test_output_folder_that_is_a_file(setup, tmp_path) -> None:
    plan, model, data = setup
    (tmp_path / "seg").write_text("x")
    result = _predict(data, "--plan", plan, "--model", model, "--out", tmp_path / "seg")
    assert result.exit_code == 1 and "output folder is a file" in result.stderr


def test_a_bad_case_exits_1_but_the_others_are_written(setup, tmp_path) -> None:
    plan, model, _ = setup
    data = write_site_dataset(tmp_path / "data2", ("bad", "good"), channels={"bad": 2})
    result = _predict(data, "--plan", plan, "--model", model, "--out", tmp_path / "seg")
    assert result.exit_code == 1
    assert "case bad" in result.stderr and "expected 4 channels" in result.stderr
    assert "1 of 2 case(s) failed" in result.stderr
    assert (tmp_path / "seg" / "good.nii.gz").is_file() and not (tmp_path / "seg" / "bad.nii.gz").exists()


def test_missing_input_and_usage_errors(setup, tmp_path) -> None:
    plan, model, _ = setup
    result = _predict(tmp_path / "nowhere", "--plan", plan, "--model", model, "--out", tmp_path / "seg")
    assert result.exit_code == 1 and "nowhere" in result.stderr
    assert _predict("--plan", plan, "--model", model, "--out", tmp_path / "seg").exit_code == 2


def test_evaluate_with_a_model_on_a_dataset(setup, tmp_path) -> None:
    plan, model, data = setup
    args = ["evaluate", "--plan", str(plan), "--model", str(model), "--data", str(data), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--split", "val", "--csv", str(tmp_path / "m.csv")])
    assert result.exit_code == 0, result.output
    assert "2 case(s) scored" in result.stdout and "Dice" in result.stdout
    assert (tmp_path / "m.csv").read_text().count("\n") == 3
    result = runner.invoke(app, [*args, "--split", "all", "--json", "-"])
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body["settings"]["source"] == "model" and len(body["cases"]) == 2
    empty = runner.invoke(app, [*args, "--split", "test"])
    assert empty.exit_code == 1 and "holds no case" in empty.stderr
    both = runner.invoke(app, [*args, "--pred", str(tmp_path), "--truth", str(tmp_path)])
    assert both.exit_code == 2
    partial = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(data)])
    assert partial.exit_code == 2 and "--plan" in partial.output


def test_evaluate_model_lesion_wise_metrics(setup) -> None:
    plan, model, data = setup
    args = ["evaluate", "--plan", str(plan), "--model", str(model), "--data", str(data), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--metrics", "lesion-wise", "--lesion-definition", "brats2023", "--json", "-"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["settings"]["metrics"] == "lesion-wise" and body["settings"]["lesion_definition"] == "brats2023"
    assert body["cases"][0]["metrics"] == {} and set(body["cases"][0]["lesionwise"]) == {"WT", "TC", "ET"}
    assert set(body["lesionwise_summary"]["WT"]) >= {"dice", "hd95", "gt_lesions", "matched", "fp", "missed"}


def test_help_has_an_example() -> None:
    for cmd in ("predict", "evaluate"):
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0 and "Example:" in result.stdout


def test_cli_module_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    code = ("import sys, fedseg.cli.predict, fedseg.cli.evaluate; "
            "print([m for m in ('torch', 'SimpleITK', 'numpy', 'h5py', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert Path(sys.executable).exists()


def test_end_to_end_raw_cases_land_on_the_raw_grid_and_match_model_evaluation(plan, site_keys, tmp_path) -> None:
    """Synthetic raw cases -> site dataset -> brief training -> signed global -> `predict` raw cases and
    `evaluate --model` the dataset: label maps on the raw T1ce grid, Dice on the raw grid within 0.02 of
    the Dice on the preprocessed grid."""
    import numpy as np
    import SimpleITK as sitk

    from fedseg.configs.model import ModelConfig
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.data.dataset import load_dataset
    from fedseg.metrics import case_metrics
    from fedseg.model.spec import build_model, state_to_numpy
    from fedseg.synth.writer import write_cases
    from fedseg.train.loop import train
    from fedseg.train.sampling import index_case
    from fedseg.workflow.preprocess.build import build_dataset

    p = plan.with_settings(
        model=ModelConfig(widths=(8, 16), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1),
        training=TrainingConfig(patch_size=(24, 24, 24), batch_size=2, learning_rate=1e-2, amp=False,
                                foreground_fraction=0.7),
        preprocessing=PreprocessConfig(spacing=(2.0, 2.0, 2.0), val_fraction=0.0, skull_strip="none"),  # type: ignore[arg-type]
    )
    write_plan(p, tmp_path / "plan.toml")
    raw = tmp_path / "raw"
    write_cases(raw, cases=3, profile=0, size_scale=0.4, seed=1)
    build_dataset(raw, tmp_path / "data", p.preprocessing, qc_png=False)
    dataset = load_dataset(tmp_path / "data")
    assert len(dataset.cases) == 3
    torch.manual_seed(0)
    net = build_model(p.model)
    train(net, [index_case(dataset.reader(c), np.random.default_rng(i)) for i, c in enumerate(dataset.cases)],
          p.training, total_steps=60, device=torch.device("cpu"))
    model = write_global(p, site_keys["coordinator"], tmp_path / "g.fedseg", tensors=state_to_numpy(net.state_dict()))

    result = _predict(raw, "--plan", tmp_path / "plan.toml", "--model", model, "--out", tmp_path / "seg", "--json")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in json.loads(result.stdout)] == ["predicted"] * 3
    result = runner.invoke(app, ["evaluate", "--plan", str(tmp_path / "plan.toml"), "--model", str(model), "--data",
                                 str(tmp_path / "data"), "--split", "all", "--device", "cpu", "--json", "-"])
    assert result.exit_code == 0, result.output
    stored = {c["case"]: c["metrics"] for c in json.loads(result.stdout)["cases"]}

    raw_dice: dict[str, list[float]] = {"WT": [], "TC": [], "ET": []}
    stored_dice: dict[str, list[float]] = {"WT": [], "TC": [], "ET": []}
    for case_id in sorted(stored):
        pred = sitk.ReadImage(str(tmp_path / "seg" / f"{case_id}.nii.gz"))
        t1ce = sitk.ReadImage(str(raw / case_id / f"{case_id}_t1ce.nii.gz"))
        truth = sitk.ReadImage(str(raw / case_id / f"{case_id}_seg.nii.gz"))
        assert pred.GetSize() == t1ce.GetSize()
        assert pred.GetSpacing() == pytest.approx(t1ce.GetSpacing())
        assert pred.GetOrigin() == pytest.approx(t1ce.GetOrigin())
        assert pred.GetDirection() == pytest.approx(t1ce.GetDirection())
        pred_arr = sitk.GetArrayFromImage(pred)
        assert set(np.unique(pred_arr)) <= {0, 1, 2, 4}  # BraTS 2021 layout in, ET = 4 out
        metrics = case_metrics(pred_arr, sitk.GetArrayFromImage(truth), tuple(reversed(truth.GetSpacing())))
        for region in raw_dice:
            raw_dice[region].append(metrics[region]["dice"])
            stored_dice[region].append(stored[case_id][region]["dice"])
    assert np.mean(stored_dice["WT"]) > 0.5  # the brief training learned something, so the comparison means something
    for region in raw_dice:
        assert np.mean(raw_dice[region]) == pytest.approx(np.mean(stored_dice[region]), abs=0.02), region

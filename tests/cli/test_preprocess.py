"""`fedseg preprocess` through the CLI: table and JSON output, exit codes, rerun, bad options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.data.dataset import load_dataset
from fedseg.labels import Layout
from fedseg.synth import write_cases

runner = CliRunner()
FAST = ["--spacing", "3", "--skull-strip", "none"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_cases(root, cases=2, profile=0, layout=Layout.BRATS2023, seed=2, size_scale=0.3)
    return root


def test_table_then_rerun_skips(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert "SYN0_0000" in result.stdout and "SYN0_0001" in result.stdout and "done" in result.stdout
    assert "brats2023 layout" in result.stdout
    assert "labels (brats2023 naming): brats2023 - 2 label map(s) read" in " ".join(result.stdout.split())
    ds = load_dataset(out)
    assert ds.preprocessing["skull_strip"] == "none" and ds.cases[0].label_convention == "brats2023"
    again = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), *FAST, "--json"])
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert [c["status"] for c in report["cases"]] == ["skipped", "skipped"] and report["failed"] == 0
    assert "2 unchanged case(s) skipped" in again.stderr
    assert report["labels"][0]["convention"] == "brats2023"
    forced = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), *FAST, "--json", "--force",
                                 "--labels", "brats2024-post"])
    forced_report = json.loads(forced.stdout)
    assert [c["status"] for c in forced_report["cases"]] == ["done", "done"]
    assert forced_report["labels"][0]["reason"] == "forced: --labels brats2024-post"
    assert load_dataset(out).cases[0].label_convention == "brats2024-post"


def test_failed_case_exits_1_and_the_rest_is_written(raw: Path, tmp_path: Path) -> None:
    src = tmp_path / "raw"
    shutil.copytree(raw, src)
    (src / "SYN0_0001" / "SYN0_0001-t2w.nii.gz").unlink()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["preprocess", str(src), "--out", str(out), *FAST, "--layout", "brats2023"])
    assert result.exit_code == 1
    assert "missing modality t2" in result.stdout
    assert "1 of 2 case(s) failed" in result.stderr
    assert [c.id for c in load_dataset(out).cases] == ["SYN0_0000"]
    as_json = runner.invoke(app, ["preprocess", str(src), "--out", str(out), *FAST, "--json"])
    assert as_json.exit_code == 1
    cases = {c["id"]: c for c in json.loads(as_json.stdout)["cases"]}
    assert cases["SYN0_0001"]["status"] == "failed" and "missing modality t2" in cases["SYN0_0001"]["reason"]


def test_user_errors(raw: Path, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(target), *FAST])
    assert result.exit_code == 1 and "must be a folder, but a file of that name exists" in result.stderr
    missing = runner.invoke(app, ["preprocess", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "input not found" in missing.stderr
    wrong_layout = runner.invoke(app, ["preprocess", str(raw), "--out", str(tmp_path / "o"), "--layout", "brats2021"])
    assert wrong_layout.exit_code == 1 and "no raw cases found" in wrong_layout.stderr
    for bad in (["--skull-strip", "magic"], ["--spacing", "abc"], ["--spacing", "1,2"], ["--layout", "x"],
                ["--labels", "brats2019"], ["--jobs", "0"], ["--label-on", "pd"]):
        usage = runner.invoke(app, ["preprocess", str(raw), "--out", str(tmp_path / "o"), *bad])
        assert usage.exit_code == 2, bad
    spacing = runner.invoke(app, ["preprocess", str(raw), "--out", str(tmp_path / "o"), "--spacing", "50"])
    assert spacing.exit_code == 1 and "spacing must lie in 0.1..10 mm" in spacing.stderr


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["preprocess", "--help"])
    assert result.exit_code == 0 and "Example: fedseg preprocess" in result.stdout
    assert "--label-on" in result.stdout and "drawn on FLAIR" in result.stdout


def test_settings_from_a_plan(raw: Path, tmp_path: Path, plan) -> None:
    import dataclasses

    from fedseg.configs.preprocess import PreprocessConfig, SkullStrip
    from fedseg.federation.plan import write_plan

    custom = dataclasses.replace(plan, preprocessing=PreprocessConfig(spacing=(4.0, 4.0, 4.0), margin=1,
                                                                      skull_strip=SkullStrip.NONE))
    write_plan(custom, tmp_path / "plan.toml")
    out = tmp_path / "ds"
    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), "--plan", str(tmp_path / "plan.toml")])
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    assert ds.preprocessing["spacing"] == [4.0, 4.0, 4.0] and ds.preprocessing["margin"] == 1
    # a command-line option overrides the plan's value
    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), "--plan", str(tmp_path / "plan.toml"),
                                 "--spacing", "3,3,4"])
    assert result.exit_code == 0 and load_dataset(out).preprocessing["spacing"] == [3.0, 3.0, 4.0]


def _kept_skull(images, method, **_):
    """An extractor that kept the skull: its 'brain' is the whole head (what the issue saw on every case)."""
    import numpy as np
    import SimpleITK as sitk

    from fedseg.imaging.skullstrip import StripResult
    from fedseg.imaging.skullstrip_classic import head_mask

    ref = images["t1ce"]
    mask = sitk.GetImageFromArray(head_mask(sitk.GetArrayFromImage(ref).astype(np.float32)).astype(np.uint8))
    mask.CopyInformation(ref)
    return StripResult(mask, "classic", "classic requested")


def test_a_site_that_kept_every_skull_is_flagged_until_accepted(raw: Path, tmp_path: Path, plan,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import fedseg.imaging.skullstrip as skullstrip
    from fedseg.configs.preprocess import PreprocessConfig, SkullStrip
    from fedseg.federation.plan import write_plan

    monkeypatch.setattr(skullstrip, "strip_skull", _kept_skull)
    # volume bounds wide enough for the reduced phantoms: only the size-independent brain share can catch them
    config = PreprocessConfig(spacing=(3.0, 3.0, 3.0), skull_strip=SkullStrip.CLASSIC, qc_brain_ml=(1.0, 1e6))
    plan_path, out = tmp_path / "plan.toml", tmp_path / "ds"
    write_plan(dataclasses.replace(plan, preprocessing=config), plan_path)

    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), "--plan", str(plan_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["flagged_count"] == 2 and [f["id"] for f in report["flagged"]] == ["SYN0_0000", "SYN0_0001"]
    assert all(Path(f["qc_png"]).is_file() and "skull was probably kept" in f["flags"][0] for f in report["flagged"])
    assert "2 case(s) flagged by QC" in result.stderr and str(out / "qc" / "SYN0_0000.png") in result.stderr
    ds = load_dataset(out)
    assert [c.status for c in ds.cases] == ["flagged", "flagged"] and not any(c.accepted for c in ds.cases)
    assert ds.split("train") == ds.split("val") == ds.split("all") == [] and len(ds.flagged()) == 2

    # a reviewer accepts one case: it is used, nothing is recomputed, the other stays out
    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), "--plan", str(plan_path),
                                 "--accept", "SYN0_0001", "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["flagged_count"] == 1 and {c["status"] for c in again["cases"]} == {"skipped"}
    ds = load_dataset(out)
    assert [c.id for c in ds.split("all")] == ["SYN0_0001"] and [c.id for c in ds.flagged()] == ["SYN0_0000"]
    body = json.loads((out / "dataset.json").read_text())
    assert [c["accepted"] for c in body["cases"]] == [False, True]  # the documented field a person may set

    result = runner.invoke(app, ["preprocess", str(raw), "--out", str(out), "--plan", str(plan_path),
                                 "--accept", "NOPE"])
    assert result.exit_code == 1 and "--accept: no case NOPE" in result.stderr

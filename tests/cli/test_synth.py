"""CLI tests for `fedseg synth` (CliRunner: exit codes, messages, files)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fedseg.cli.app import app

runner = CliRunner()


def test_synth_writes_cases_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    result = runner.invoke(app, ["synth", str(out), "--cases", "2", "--profile", "2", "--layout", "brats2023", "--size-scale", "0.2"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 case(s)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["SYN2_0000", "SYN2_0001"]
    assert (out / "SYN2_0001" / "SYN2_0001-t2f.nii.gz").is_file()
    again = runner.invoke(app, ["synth", str(out), "--cases", "1", "--profile", "2", "--layout", "brats2023", "--size-scale", "0.2"])
    assert again.exit_code == 1 and "already exists" in again.stderr and "--force" in again.stderr
    forced = runner.invoke(
        app, ["synth", str(out), "-n", "1", "-p", "2", "--layout", "brats2023", "--size-scale", "0.2", "--force", "--json"]
    )
    assert forced.exit_code == 0, forced.output
    summary = json.loads(forced.stdout)
    assert summary["cases"] == 1 and summary["layout"] == "brats2023" and summary["profile"] == 2


def test_synth_nnunet_layout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path), "--cases", "1", "--layout", "nnunet", "--size-scale", "0.2", "--prefix", "P"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "imagesTr" / "P_0000_0003.nii.gz").is_file()
    assert json.loads((tmp_path / "dataset.json").read_text())["numTraining"] == 1


def test_synth_error_paths(tmp_path: Path) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("not a folder")
    result = runner.invoke(app, ["synth", str(afile), "--cases", "1"])
    assert result.exit_code == 1 and "found a file" in result.stderr
    assert afile.read_text() == "not a folder"
    result = runner.invoke(app, ["synth", str(tmp_path / "o"), "--cases", "1", "--profile", "7"])
    assert result.exit_code == 1 and "profile" in result.stderr
    assert runner.invoke(app, ["synth", str(tmp_path / "o"), "--cases", "0"]).exit_code == 2
    assert runner.invoke(app, ["synth", str(tmp_path / "o"), "--cases", "1", "--layout", "dicom"]).exit_code == 2
    auto = runner.invoke(app, ["synth", str(tmp_path / "o"), "--cases", "1", "--layout", "auto"])
    assert auto.exit_code == 1 and "expected a layout among brats2021, brats2023, nnunet" in auto.stderr
    assert runner.invoke(app, ["synth", str(tmp_path / "o")]).exit_code == 2  # --cases is required
    assert not (tmp_path / "o").exists()


def test_synth_help_has_example() -> None:
    result = runner.invoke(app, ["synth", "--help"])
    assert result.exit_code == 0 and "Example:" in result.stdout


def test_synth_anatomy_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "r"), "--cases", "1", "--anatomy", "realistic", "--size-scale", "0.25",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["anatomy"] == "realistic"
    truth = json.loads((tmp_path / "r" / "SYN0_0000" / "SYN0_0000_truth.json").read_text())
    assert truth["profile"]["head"] == "realistic" and truth["profile"]["partial_volume"]
    bad = runner.invoke(app, ["synth", str(tmp_path / "b"), "--cases", "1", "--anatomy", "bogus"])
    assert bad.exit_code == 2 and "simple or realistic" in bad.output

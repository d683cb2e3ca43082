"""`fedseg train-local` and `fedseg export` through the CLI: exit codes, tables, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.federation.plan import write_plan
from fedseg.workflow.initial import write_initial_global
from tests._train_data import make_dataset, tiny_plan

runner = CliRunner()


@pytest.fixture
def fed(plan, site_keys, tmp_path: Path):
    p = tiny_plan(plan, steps_per_round=2)
    write_plan(p, tmp_path / "plan.toml")
    g = write_initial_global(p, site_keys["coordinator"], tmp_path)
    data = make_dataset(tmp_path / "data", train=1, val=1, shape=(16, 16, 16))
    return p, tmp_path / "plan.toml", g, data


def _args(plan_path: Path, g: Path, data: Path, key: Path, out: Path) -> list[str]:
    return ["train-local", "--plan", str(plan_path), "--global", str(g), "--data", str(data), "--key", str(key),
            "--out", str(out), "--device", "cpu"]


def test_train_local_then_export_via_cli(fed, keydir: Path, tmp_path: Path) -> None:
    p, plan_path, g, data = fed
    out = tmp_path / "site-a-r0001.fedseg"
    result = runner.invoke(app, [*_args(plan_path, g, data, keydir / "site-a.key", out), "--no-export"])
    assert result.exit_code == 0, result.output
    assert "Dice before" in result.stdout and "WT" in result.stdout and "fedseg export" in result.stdout
    assert not out.exists()
    ckpt = tmp_path / "site-a-r0001.fedseg.ckpt"
    result = runner.invoke(app, ["export", str(ckpt), "--plan", str(plan_path), "--key", str(keydir / "site-a.key"),
                                 "--out", str(out), "--dtype", "float16"])
    assert result.exit_code == 0, result.output
    art = read_artifact(out, p, kind=Kind.UPDATE)
    assert art.manifest["dtype"] == "float16" and art.manifest["signer"] == "site-a"
    result = runner.invoke(app, ["inspect", str(out), "--plan", str(plan_path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export", "--model", str(g), "--plan", str(plan_path), "--format", "safetensors",
                                 "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.safetensors.json").read_text())["model"]["widths"] == [4, 8]


def test_train_local_json_and_export(fed, keydir: Path, tmp_path: Path) -> None:
    p, plan_path, g, data = fed
    out = tmp_path / "u.fedseg"
    result = runner.invoke(app, [*_args(plan_path, g, data, keydir / "site-b.key", out), "--steps", "1", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["site"] == "site-b" and body["steps"] == 1 and body["update"] == str(out)
    assert set(body["val_dice_after"]) == {"WT", "TC", "ET"}
    assert read_artifact(out, p, kind=Kind.UPDATE).manifest["metrics"]["steps"] == 1


def test_cli_errors(fed, keydir: Path, tmp_path: Path) -> None:
    _, plan_path, g, data = fed
    out = tmp_path / "u.fedseg"
    result = runner.invoke(app, [*_args(plan_path, g, data, keydir / "outsider.key", out)])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "not a member's key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    result = runner.invoke(app, [*_args(plan_path, g, data, keydir / "site-a.key", out), "--steps", "1",
                                 "--epochs", "1"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["export", "--plan", str(plan_path), "--out", str(out)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["export", str(tmp_path), "--plan", str(plan_path), "--out", str(out),
                                 "--key", str(keydir / "site-a.key")])
    assert result.exit_code == 1 and "not a checkpoint folder" in result.stderr
    for command in ("train-local", "export"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.stdout

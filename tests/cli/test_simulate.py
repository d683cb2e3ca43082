"""`fedseg simulate` on a tiny plan: runs without --device (auto), refuses a bad --device in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.plan import write_plan
from tests._train_data import make_dataset, tiny_plan

runner = CliRunner()


@pytest.fixture
def sim_inputs(plan, tmp_path: Path) -> tuple[list[str], Path]:
    """Three 16³ site datasets (1 train + 1 val case each) and a tiny plan file."""
    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("abc")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=1, batch_size=1), plan_path)
    return sites, plan_path


def test_simulate_without_device_runs_on_auto(sim_inputs, tmp_path: Path) -> None:
    sites, plan_path = sim_inputs
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "fl,cds,iil,ciil",
                                 "--rounds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "FL / CDS" in result.output
    numbers = json.loads((out / "simulation.json").read_text())
    assert set(numbers["curves"]) == {"fl", "cds", "iil", "ciil"}
    assert all([p["round"] for p in curve] == [0, 1] for curve in numbers["curves"].values())


def test_simulate_refuses_a_misspelt_device(sim_inputs, tmp_path: Path) -> None:
    sites, plan_path = sim_inputs
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--device", "gpu",
                                 "--out", str(tmp_path / "sim")])
    assert result.exit_code == 2
    assert "expected one of auto | cpu | cuda" in " ".join(result.output.replace("│", " ").split())
    assert not (tmp_path / "sim").exists()  # refused before any work


def test_simulate_cuda_absent_is_one_red_line(sim_inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sites, plan_path = sim_inputs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--device", "cuda",
                                 "--out", str(tmp_path / "sim")])
    assert result.exit_code == 1
    assert "CUDA was asked for but is not available" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "sim").exists()  # refused before any work

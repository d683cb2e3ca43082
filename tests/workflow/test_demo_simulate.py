"""End to end: `fedseg demo --fast` runs the whole pipeline; `fedseg simulate` runs every mode on its sites.

One module-scoped demo run (about a minute on 2 cores) feeds every test here: the demo's artifacts and
ledger are verified independently of the demo's own audit, and its site datasets feed the simulation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import load_plan
from fedseg.labels import REGIONS
from fedseg.model.spec import model_tensor_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "fedseg-demo"
    result = runner.invoke(app, ["demo", "--fast", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "held-out" in result.output and "fedseg aggregate" in result.output
    # it ends with the paper's comparison on its own sites, and that comparison's run time here
    assert "fedseg simulate" in result.output and "--budget converged" in result.output
    assert "min on this machine" in result.output
    return out


def test_demo_artifacts_and_ledger_verify(demo_dir: Path) -> None:
    plan = load_plan(demo_dir / "fed" / "plan.toml")
    spec = model_tensor_spec(plan.model)
    globals_ = sorted((demo_dir / "fed").glob("global-r*.fedseg"))
    updates = sorted(demo_dir.glob("hospital-*/update-r*.fedseg"))
    assert len(globals_) == 3 and len(updates) == 6  # fast preset: 2 rounds, 3 sites
    parents = set()
    for path in globals_:
        art = read_artifact(path, plan, kind=Kind.GLOBAL, spec=spec)
        assert art.signer.id == "coordinator"
        parents.add(art.digest)
    for path in updates:
        art = read_artifact(path, plan, kind=Kind.UPDATE, spec=spec)
        assert art.manifest["parent_sha256"] in parents  # every update trained on a global of this run
    ledger = Ledger(demo_dir / "fed" / "ledger.jsonl")
    ledger.verify()
    assert ledger.last_global()["round"] == 2
    # the demo's honest non-IID hospitals pass every screen (norm, direction, example bound) in every round
    assert [e for e in ledger.entries() if e["event"] == "update-rejected"] == []
    assert all(s.cases is not None for s in plan.sites) and plan.aggregation.direction_z > 0


def test_demo_scores_are_real_and_finite(demo_dir: Path) -> None:
    results = json.loads((demo_dir / "results.json").read_text())
    assert results["held_out_cases"] >= 3
    assert results["artifacts_verified"] == 9
    for region in REGIONS:
        assert math.isfinite(results["held_out_mean"][region])
        assert 0.0 <= results["held_out_mean"][region] <= 1.0
    assert [p["round"] for p in results["per_round_val_dice"]] == [0, 1, 2]
    assert (demo_dir / "dice-per-round.png").stat().st_size > 1000


def test_demo_prints_the_comparison_it_cannot_afford(demo_dir: Path) -> None:
    comparison = json.loads((demo_dir / "results.json").read_text())["comparison"]
    args = comparison["command"].split()
    assert args[:2] == ["fedseg", "simulate"] and "--plan" in args and args[args.index("--modes") + 1] == "fl,cds,iil,ciil"
    assert [Path(a).name for a in args[2:5]] == ["data"] * 3 and all(Path(a).is_dir() for a in args[2:5])
    rounds = json.loads((demo_dir / "fed" / "round-seconds.json").read_text())["seconds_per_round"]
    assert rounds > 0.5  # a round of the fast demo trains three sites: not milliseconds
    assert args[args.index("--device") + 1] == "cpu"  # the device the round was measured on
    assert args[args.index("--patience") + 1] == "5"  # the default the campaigns measured
    # 3 seeds x (patience + 1) rounds for fl, cds, ciil and for each of iil's 3 visits; at most 4 modes x 30
    assert comparison["seconds_low"] == round(rounds * 3 * 6 * (3 + 3))
    assert comparison["seconds_high"] == round(rounds * 4 * 3 * 30)


def test_demo_under_central_privacy_reports_epsilon(demo_dir: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "private-demo"
    shutil.copytree(demo_dir / "raw", out / "raw")  # the same scans and site datasets: only training reruns
    for site in ("hospital-a", "hospital-b", "hospital-c"):
        shutil.copytree(demo_dir / site / "data", out / site / "data")
    result = runner.invoke(app, ["demo", "--fast", "--out", str(out), "--privacy", "central",
                                 "--target-epsilon", "50"])
    assert result.exit_code == 0, result.output
    assert "privacy: central (per site), ε spent" in result.output
    plan = load_plan(out / "fed" / "plan.toml")
    assert plan.privacy.mode.value == "central" and plan.aggregation.weighting.value == "uniform"
    record = json.loads((out / "results.json").read_text())["privacy"]
    final = read_artifact(out / "fed" / "global-r0002.fedseg", plan, kind=Kind.GLOBAL, load_tensors=False)
    assert record == final.manifest["privacy"] and 0 < record["epsilon"] <= 50
    # the same folder with privacy off would mix two federations: refused, nothing rewritten
    again = runner.invoke(app, ["demo", "--fast", "--out", str(out)])
    assert again.exit_code == 1 and "privacy" in again.output


def test_demo_rerun_reuses_finished_steps(demo_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (demo_dir / "fed").glob("global-r*.fedseg")}
    result = runner.invoke(app, ["demo", "--fast", "--out", str(demo_dir)])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rewritten
    # the rerun trained nothing, so its comparison estimate is the first run's measured round, not ~0 min
    measured = json.loads((demo_dir / "fed" / "round-seconds.json").read_text())["seconds_per_round"]
    assert json.loads((demo_dir / "results.json").read_text())["comparison"]["seconds_high"] == round(measured * 360)


def test_demo_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["demo", "--fast", "--out", str(target)])
    assert result.exit_code == 1
    assert "expected a folder" in result.output


def test_simulate_every_mode(demo_dir: Path, tmp_path: Path) -> None:
    sites = [str(demo_dir / s / "data") for s in ("hospital-a", "hospital-b", "hospital-c")]
    out = tmp_path / "sim"
    args = ["simulate", *sites, "--modes", "fl,cds,iil,ciil,local", "--rounds", "2", "--steps", "2",
            "--out", str(out), "--device", "cpu", "--plan", str(demo_dir / "fed" / "plan.toml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "FL / CDS" in result.output
    numbers = json.loads((out / "simulation.json").read_text())
    assert set(numbers["curves"]) == {"fl", "cds", "iil", "ciil", "local"}
    for mode, curve in numbers["curves"].items():
        assert [p["round"] for p in curve] == [0, 1, 2], mode
        assert curve[0]["dice"] == numbers["curves"]["fl"][0]["dice"]  # one shared initial model
        assert all(math.isfinite(p["dice"][r]) for p in curve for r in REGIONS)
    # fl went through the real signed path: one signed global per round and a verified ledger
    plan = load_plan(out / "fl" / "plan.toml")
    for r in range(3):
        read_artifact(out / "fl" / f"global-r{r:04d}.fedseg", plan, kind=Kind.GLOBAL)
    Ledger(out / "fl" / "ledger.jsonl").verify()
    assert (out / "simulation.png").stat().st_size > 1000
    # A rerun resumes: nothing is trained again and the numbers are the same.
    again = runner.invoke(app, args + ["--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["curves"] == numbers["curves"]


def test_simulate_trains_fl_under_dp_sgd(demo_dir: Path, tmp_path: Path) -> None:
    sites = [str(demo_dir / s / "data") for s in ("hospital-a", "hospital-b", "hospital-c")]
    out = tmp_path / "sim-dp"
    result = runner.invoke(app, ["simulate", *sites, "--modes", "fl,cds", "--rounds", "1", "--steps", "2",
                                 "--out", str(out), "--plan", str(demo_dir / "fed" / "plan.toml"),
                                 "--privacy", "dp-sgd", "--target-epsilon", "3", "--max-grad-norm", "0.5"])
    assert result.exit_code == 0, result.output
    plan = load_plan(out / "fl" / "plan.toml")
    assert (plan.privacy.mode.value, plan.privacy.target_epsilon, plan.privacy.max_grad_norm) == ("dp-sgd", 3.0, 0.5)
    record = read_artifact(out / "fl" / "global-r0001.fedseg", plan, kind=Kind.GLOBAL,
                           load_tensors=False).manifest["privacy"]
    assert set(record["site_epsilon"]) == {"hospital-a", "hospital-b", "hospital-c"}
    assert all(0 < eps <= 3 for eps in record["site_epsilon"].values())
    bad = runner.invoke(app, ["simulate", *sites, "--out", str(tmp_path / "x"), "--privacy", "dpsgd"])
    assert bad.exit_code == 2 and "expected off, dp-sgd or central" in bad.output


def test_simulate_rejects_bad_modes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", str(tmp_path), "--modes", "fl,bogus"])
    assert result.exit_code == 2

"""`fedseg simulate` on a tiny plan: runs without --device (auto), refuses a bad --device in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
                                 "--rounds", "1", "--max-rounds", "9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "FL / CDS" in result.output
    assert "--max-rounds does not apply under --budget equal and is ignored" in " ".join(result.output.split())
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


def _mean(dice: dict[str, float]) -> float:
    return sum(dice.values()) / len(dice)


def test_converged_protocol_selects_on_val_reports_on_test_and_external(plan, tmp_path: Path) -> None:
    from fedseg.train.checkpoint import read_tensors
    from fedseg.workflow.simulate.scoring import ALL_SPLITS, evaluate_weights
    from fedseg.workflow.simulate.sites import Site

    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, test=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("abc")]
    outside = make_dataset(tmp_path / "site-x", train=1, val=1, test=1, shape=(16, 16, 16), seed=7)
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=2, batch_size=1), plan_path)
    out = tmp_path / "sim"
    args = ["simulate", *sites, "--plan", str(plan_path), "--modes", "fl,cds,ciil", "--budget", "converged",
            "--patience", "1", "--max-rounds", "3", "--external", str(outside), "--device", "cpu", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Converged" in text and "Equal budget" in text and "FL / CDS" in text and "site-x" in text
    numbers = json.loads((out / "simulation.json").read_text())
    conv, equal = numbers["protocols"]["converged"]["modes"], numbers["protocols"]["equal"]["modes"]
    assert set(conv) == set(equal) == {"fl", "cds", "ciil"}
    the_plan = tiny_plan(plan, steps_per_round=2, batch_size=1)
    for mode, curve in numbers["curves"].items():
        scores = [_mean(p["dice"]) for p in curve]
        trained = len(curve) - 1
        # patience 1: a mode stops at its first evaluation without improvement, or at the maximum
        assert trained == 3 or scores[-1] <= max(scores[:-1]) + 1e-4, mode
        assert all(scores[k] > max(scores[:k]) + 1e-4 for k in range(1, trained)), mode
        entry = conv[mode]
        assert entry["trained_rounds"] == trained and entry["steps"] == entry["round"] * 3 * 2
        assert entry["round"] == max(range(len(scores)), key=lambda k: (scores[k], -k))  # selected on validation
        assert entry["val"] == curve[entry["round"]]["dice"]
        assert entry["test"]["cases"] == 3 and len(entry["test"]["case_dice"]) == 3
        assert entry["external"]["site-x"]["cases"] == 3  # every case of the external site
        assert equal[mode]["round"] == min(len(c) - 1 for c in numbers["curves"].values())
    # the reported test Dice is the selected model's Dice on the test split (scored again here)
    r = conv["cds"]["round"]
    weights = read_tensors(out / "cds" / f"weights-r{r:04d}.h5")[0] if r else None
    if weights is not None:
        test = evaluate_weights(the_plan, weights, [Site(f"site-{s}", tmp_path / f"site-{s}") for s in "abc"],
                                "test")
        assert test["dice"] == pytest.approx(conv["cds"]["test"]["dice"])
        ext = evaluate_weights(the_plan, weights, [Site("site-x", outside)], ALL_SPLITS)
        assert ext["dice"] == pytest.approx(conv["cds"]["external"]["site-x"]["dice"])
    fl = numbers["protocols"]["converged"]["fl_over_cds"]
    for region, value in fl.items():
        cds = conv["cds"]["test"]["dice"][region]
        assert value is None if cds == 0 else value == pytest.approx(conv["fl"]["test"]["dice"][region] / cds)


def test_external_site_that_trains_is_refused(sim_inputs, tmp_path: Path) -> None:
    sites, plan_path = sim_inputs
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--external", sites[0],
                                 "--rounds", "1", "--device", "cpu", "--out", str(tmp_path / "sim")])
    assert result.exit_code == 1
    assert "must take no part in training" in " ".join(result.output.split())


def test_seeds_report_mean_sd_and_the_paired_test(plan, tmp_path: Path) -> None:
    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, test=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("abc")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=1, batch_size=1), plan_path)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "fl,cds,ciil",
                                 "--rounds", "1", "--seeds", "2", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "±" in text and "Wilcoxon signed-rank" in text and "FL VS CDS" in text and "FL VS CIIL" in text
    assert "steps" in text and "differ)" in text
    summary = json.loads((out / "summary.json").read_text())["all"]
    assert summary["seeds"] == [0, 1]
    runs = [json.loads((out / f"seed-{s}" / "simulation.json").read_text()) for s in (0, 1)]
    wt = [r["protocols"]["converged"]["modes"]["fl"]["test"]["dice"]["WT"] for r in runs]
    assert summary["converged"]["modes"]["fl"]["test"]["WT"]["mean"] == pytest.approx(sum(wt) / 2)
    assert summary["converged"]["paired"]["fl_vs_cds"]["WT"]["n"] == 6  # 2 seeds × 3 test cases
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "summary.png" in text


def test_leave_one_out_scores_the_held_out_site_as_external(plan, tmp_path: Path) -> None:
    # Folders of one base name (a/site, b/site, c/site): each dataset keeps its one id in every fold.
    roots = {sid: make_dataset(tmp_path / d / "site", train=1, val=1, shape=(16, 16, 16), seed=i)
             for i, (d, sid) in enumerate(zip("abc", ("site", "site-2", "site-3")))}
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=1, batch_size=1), plan_path)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *map(str, roots.values()), "--plan", str(plan_path), "--modes", "fl,cds",
                                 "--rounds", "1", "--leave-one-out", "--device", "cpu", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == set(roots)  # one summary per held-out site
    for held in roots:
        run = json.loads((out / f"without-{held}" / "seed-0" / "simulation.json").read_text())
        assert run["config"]["sites"] == {s: str(r) for s, r in roots.items() if s != held}
        assert run["config"]["external"] == {held: str(roots[held])}
        assert run["protocols"]["converged"]["modes"]["fl"]["external"][held]["cases"] == 2  # its train + val
        assert (out / f"without-{held}" / "summary.png").exists()


def test_a_folder_is_resumed_only_with_the_settings_it_was_started_with(sim_inputs, tmp_path: Path) -> None:
    sites, plan_path = sim_inputs
    out = tmp_path / "sim"
    args = ["simulate", *sites, "--plan", str(plan_path), "--modes", "cds", "--rounds", "1", "--device", "cpu",
            "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "simulation.json").read_bytes()
    resumed = runner.invoke(app, args)  # the same settings: resumed, nothing trained again
    assert resumed.exit_code == 0, resumed.output
    assert "cds round 1" not in resumed.output and (out / "simulation.json").read_bytes() == before
    for extra, differs in ((["--seed", "1"], "with other training (seed 0) lives in"),
                           (["--steps", "2"], "with other training (seed 0) lives in"),
                           (["--privacy", "dp-sgd"], "privacy (seed 0) lives in"),
                           (["--patience", "3"], "patience 5 (now 3)")):  # the default is 5
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 1, result.output
        line = " ".join(result.output.split())
        assert "an earlier simulation with other" in line and differs in line and "Traceback" not in line
    assert (out / "simulation.json").read_bytes() == before  # another seed's numbers never replace these
    private = [*args[:-1], str(tmp_path / "dp"), "--modes", "fl", "--privacy", "dp-sgd"]
    assert runner.invoke(app, private).exit_code == 0
    result = runner.invoke(app, private[:-2])  # the same run without privacy: a table only the earlier plan has
    assert result.exit_code == 1 and "privacy (seed 0) lives in" in " ".join(result.output.split())


def test_simulate_without_plan_or_device_sizes_the_model_to_the_cpu(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("ab")]
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--modes", "fl,cds", "--rounds", "1", "--steps", "1",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "the demo's small model" in " ".join(result.output.split())
    numbers = json.loads((out / "simulation.json").read_text())
    assert numbers["config"]["device"] == "cpu"
    assert numbers["config"]["plan"]["model"]["widths"] == [16, 32, 64, 128]


def test_simulate_follows_the_plans_lr_scope_and_kept_optimizer_in_every_mode(plan, tmp_path: Path) -> None:
    from fedseg.train.checkpoint import read_tensors

    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("ab")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=2, batch_size=1, lr_scope="federation", keep_optimizer_state=True),
               plan_path)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "fl,cds,ciil",
                                 "--rounds", "2", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output

    def adam_steps(path: Path) -> set[float]:
        return {float(v) for k, v in read_tensors(path)[0].items() if k.endswith("/step")}

    # cds: 2 sites x 2 steps a round, one trainer; ciil: the visits go on from each other's moments
    assert adam_steps(out / "cds" / "optimizer-r0001.h5") == {4.0}
    assert adam_steps(out / "cds" / "optimizer-r0002.h5") == {8.0}
    assert adam_steps(out / "ciil" / "optimizer-r0002.h5") == {8.0}
    # fl: each site keeps its own, beside its site state (2 steps a round, 2 rounds)
    kept = sorted((out / "fl" / "state").glob("*.optimizer-r0002.h5"))  # round 1's went once round 2 was done
    assert len(kept) == 2 and all(adam_steps(k) == {4.0} for k in kept)


def test_simulate_fl_with_scaffold_keeps_each_sites_control_variate(plan, tmp_path: Path) -> None:
    from fedseg.train.checkpoint import read_tensors

    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("ab")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=2, batch_size=1, drift_correction="scaffold"), plan_path)
    assert 'drift_correction = "scaffold"' in plan_path.read_text()
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "fl,cds",
                                 "--rounds", "2", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    state = out / "fl" / "state"
    assert not list(state.glob("*.drift-r0001.h5"))  # round 1's went once round 2 was done
    kept = sorted(state.glob("*.drift-r0002.h5"))
    assert len(kept) == 2
    controls = [read_tensors(k)[0] for k in kept]
    assert all(t[n].any() for t in controls for n in t if n.startswith("control/"))
    name = next(n for n in controls[0] if n.startswith("control/"))
    assert not np.array_equal(controls[0][name], controls[1][name])  # each site's own direction
    numbers = json.loads((out / "simulation.json").read_text())
    assert numbers["config"]["plan"]["training"]["drift_correction"] == "scaffold"
    # one trainer has no drift to correct: no mode but fl keeps a control variate
    assert [f for f in out.rglob("*.drift-r*.h5") if f.relative_to(out).parts[0] != "fl"] == []


def test_a_scaffold_plan_with_a_server_optimizer_is_refused_by_name(plan, tmp_path: Path) -> None:
    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("ab")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, drift_correction="scaffold"), plan_path)
    text = plan_path.read_text()
    assert 'strategy = "fedavg"' in text
    plan_path.write_text(text.replace('strategy = "fedavg"', 'strategy = "fedavgm"'))
    for args in (["plan", "check", str(plan_path)],
                 ["simulate", *sites, "--plan", str(plan_path), "--rounds", "1", "--out", str(tmp_path / "sim")]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert "drift_correction" in result.output and "fedavgm" in result.output, result.output
    assert not (tmp_path / "sim" / "fl").exists()


@pytest.mark.parametrize(("scope", "windows"), [
    ("round", [(0.0, 1.0)] * 4),  # every site visit restarts the curve, as each FL site's round does
    ("federation", [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]),  # 2 rounds x 2 visits share one curve
])
def test_ciil_visits_follow_the_lr_scope(plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str,
                                         windows: list[tuple[float, float]]) -> None:
    import fedseg.train.loop as loop

    seen: list[tuple[float, float]] = []
    real = loop.train

    def recording(*args, schedule_window=(0.0, 1.0), **kwargs):  # noqa: ANN002, ANN003, ANN202 - a spy
        seen.append(schedule_window)
        return real(*args, schedule_window=schedule_window, **kwargs)

    monkeypatch.setattr(loop, "train", recording)
    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("ab")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=1, batch_size=1, lr_scope=scope), plan_path)
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "ciil", "--rounds", "2",
                                 "--out", str(tmp_path / "sim"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert [v for w in seen for v in w] == pytest.approx([v for w in windows for v in w])


def test_a_folder_scored_by_an_older_fedseg_is_not_resumed(sim_inputs, tmp_path: Path) -> None:
    # Before 2026-12 fedseg scored whole-volume windows; its cached curves must never mix with today's scores.
    sites, plan_path = sim_inputs
    out = tmp_path / "sim"
    out.mkdir()
    (out / "protocol.json").write_text(json.dumps({"budget": "equal", "patience": 3, "rounds": 1, "steps": 1,
                                                   "split": "val"}))
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "cds", "--rounds", "1",
                                 "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 1
    assert "scored by an older fedseg (whole-volume windows)" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (out / "initial.json").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--modes", ","], "name at least one of"),
    (["--leave-one-out"], "--leave-one-out needs at least two site datasets"),
    (["--external", "EMPTY"], "has no usable case to score"),
    (["--external", "OTHER", "--external", "OTHER"], "named twice"),
    (["--external", "SITE"], "this dataset trains in the simulation"),
    (["SITE"], "named twice; name each site dataset once"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--patience", "0"], "--patience must be >= 1"),
    (["OTHER", "--modes", "iil", "--budget", "converged", "--max-rounds", "1"], "give --max-rounds >= 2"),
])
def test_simulate_refuses_bad_inputs_before_writing(plan, tmp_path: Path, extra: list[str], message: str) -> None:
    """An empty mode list, one site left out of one, an external site with no case, named twice or training
    in the simulation: one clear line before anything is written under --out."""
    site = make_dataset(tmp_path / "site-a", train=1, val=1, shape=(16, 16, 16), seed=0)
    other = make_dataset(tmp_path / "site-x", train=1, shape=(16, 16, 16), seed=1)
    empty = make_dataset(tmp_path / "site-e", train=0, val=0, shape=(16, 16, 16), seed=2)
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=1, batch_size=1), plan_path)
    extra = [{"EMPTY": str(empty), "OTHER": str(other), "SITE": str(site)}.get(a, a) for a in extra]
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", str(site), *extra, "--plan", str(plan_path), "--rounds", "1",
                                 "--device", "cpu", "--out", str(out)])
    assert result.exit_code in (1, 2), result.output
    assert message in " ".join(result.output.replace("│", " ").split())
    assert "Traceback" not in result.output
    assert not out.exists()


def test_simulate_refuses_a_missing_site_folder_before_writing(plan, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan), plan_path)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", str(tmp_path / "nowhere"), "--plan", str(plan_path), "--device", "cpu",
                                 "--out", str(out)])
    assert result.exit_code == 1
    assert "nowhere: expected a site dataset folder" in " ".join(result.output.split())
    assert not out.exists()


def test_split_test_warns_and_fl_sites_still_sign_their_validation_scores(plan, tmp_path: Path) -> None:
    """Under --split test the curve scores the test cases; a site's signed ``val_dice_before`` stays the score
    of its validation cases (which it then measures itself), never the curve's test figure."""
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.federation.plan import load_plan

    sites = [str(make_dataset(tmp_path / f"site-{s}", train=1, val=1, test=1, shape=(16, 16, 16), seed=i))
             for i, s in enumerate("ab")]
    plan_path = tmp_path / "plan.toml"
    write_plan(tiny_plan(plan, steps_per_round=1, batch_size=1, metrics_min_cases=1), plan_path)  # 1 val case
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "fl", "--rounds", "1",
                                 "--split", "test", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "the test Dice is optimistic" in " ".join(result.output.split())
    curve = json.loads((out / "fl" / "curve.json").read_text())
    sim_plan = load_plan(out / "fl" / "plan.toml")
    for site in ("site-a", "site-b"):
        metrics = read_artifact(out / "fl" / "updates" / "r0001" / f"{site}.fedseg", sim_plan,
                                kind=Kind.UPDATE).manifest["metrics"]
        assert metrics["val_cases"] == 1
        assert metrics["val_dice_before"] != curve[0]["sites"][site]["dice"]  # its val case, not the test case


def test_iil_under_converged_visits_every_site_in_turn(sim_inputs, tmp_path: Path) -> None:
    """--max-rounds 4 over 3 sites: each visit may take floor(4 / 3) = 1 round, so IIL trains a, b, c once."""
    sites, plan_path = sim_inputs
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", *sites, "--plan", str(plan_path), "--modes", "iil", "--budget",
                                 "converged", "--patience", "2", "--max-rounds", "4", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    curve = json.loads((out / "simulation.json").read_text())["curves"]["iil"]
    assert [p.get("visit") for p in curve] == [None, 0, 1, 2]
    text = " ".join(result.output.split())
    assert all(f"iil round {r}: trains site-{s}×3 steps" in text for r, s in ((1, "a"), (2, "b"), (3, "c")))

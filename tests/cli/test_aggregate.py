"""`fedseg aggregate` through the CLI: table, JSON, quorum failure, dry run, usage errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.plan import Plan, write_plan
from tests._aggregate_data import model, write_global, write_update

runner = CliRunner()


def setup(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], keydir: Path) -> list[str]:
    fed = tmp_path / "fed"
    write_plan(plan, fed / "plan.toml")
    g = write_global(plan, site_keys, fed / "global-r0000.fedseg", model(0.0))
    ups = [str(write_update(plan, site_keys, tmp_path / f"{s}.fedseg", s, g.digest,
                            model(0.0, np.random.default_rng(i)), num_examples=10 + i))
           for i, s in enumerate(("site-a", "site-b"))]
    bad = write_update(plan, site_keys, tmp_path / "late.fedseg", "site-c", g.digest, model(), round_=7)
    return ["aggregate", "--plan", str(fed / "plan.toml"), "--global", str(fed / "global-r0000.fedseg"),
            "--key", str(keydir / "coordinator.key"), "--out", str(fed / "global-r0001.fedseg"), *ups, str(bad)]


def test_cli_writes_global_and_prints_table(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], keydir: Path) -> None:
    args = setup(tmp_path, plan, site_keys, keydir)
    result = runner.invoke(app, args, env={"COLUMNS": "200"})  # one table row per update
    assert result.exit_code == 0, result.output
    assert "accepted" in result.stdout and "rejected" in result.stdout and "expected round 1" in result.stdout
    assert "wrote" in result.stdout and (tmp_path / "fed" / "global-r0001.fedseg").exists()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already aggregated" in again.stdout


def test_cli_json_dry_run(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], keydir: Path) -> None:
    args = setup(tmp_path, plan, site_keys, keydir)
    result = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "dry-run" and report["accepted"] == 2 and report["rejected"] == 1
    assert [u["rule"] for u in report["updates"]] == [None, None, "round"]
    assert not (tmp_path / "fed" / "global-r0001.fedseg").exists()


def test_cli_below_quorum_exits_1_and_writes_nothing(tmp_path: Path, plan: Plan, site_keys: dict[str, Any],
                                                     keydir: Path) -> None:
    args = setup(tmp_path, plan, site_keys, keydir)
    result = runner.invoke(app, [*args, "--min-sites", "3", "--strategy", "median"])
    assert result.exit_code == 1
    assert "quorum is 3" in result.stderr and "nothing was written" in result.stderr
    assert "rejected" in result.stdout  # the table still says why
    assert sorted(p.name for p in (tmp_path / "fed").iterdir()) == ["global-r0000.fedseg", "plan.toml"]


def test_cli_usage_and_timestamp_errors(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], keydir: Path) -> None:
    args = setup(tmp_path, plan, site_keys, keydir)
    assert runner.invoke(app, [*args, "--strategy", "krum"]).exit_code == 2
    assert runner.invoke(app, [*args, "--min-sites", "0"]).exit_code == 2
    bad = runner.invoke(app, [*args, "--timestamp", "yesterday"])
    assert bad.exit_code == 1 and "--timestamp 'yesterday'" in bad.stderr
    wrong_key = [a if a != str(keydir / "coordinator.key") else str(keydir / "site-a.key") for a in args]
    result = runner.invoke(app, wrong_key)
    assert result.exit_code == 1 and "not the plan key" in result.stderr
    assert "Example:" in runner.invoke(app, ["aggregate", "--help"]).stdout


def test_cli_while_another_aggregate_holds_the_folder(tmp_path: Path, plan: Plan, site_keys: dict[str, Any],
                                                      keydir: Path) -> None:
    from fedseg.fsutil import folder_lock
    from fedseg.workflow.coordinator.round_lock import LOCK_NAME

    args = setup(tmp_path, plan, site_keys, keydir)
    (tmp_path / "fed" / ".global-r0001.fedseg.live0001.tmp").write_bytes(b"a live run's file")
    before = sorted(p.name for p in (tmp_path / "fed").iterdir())
    with folder_lock(tmp_path / "fed", LOCK_NAME, holder="aggregate"):
        result = runner.invoke(app, args)
    assert result.exit_code == 1 and "another aggregate is running here" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "fed").iterdir()) == before


def test_cli_json_shows_the_federated_validation_curve(tmp_path: Path, plan: Plan, site_keys: dict[str, Any],
                                                       keydir: Path) -> None:
    from fedseg.federation.artifact import Kind, read_artifact

    fed = tmp_path / "fed"
    write_plan(plan, fed / "plan.toml")
    digest = write_global(plan, site_keys, fed / "global-r0000.fedseg", model(0.0)).digest
    scores = {"site-a": (3, 0.8), "site-b": (1, 0.4)}  # (validation cases, Dice of the received global)
    for r in (1, 2):
        ups = []
        for i, (s, (cases, dice)) in enumerate(scores.items()):
            metrics = {"val_dice_before": {"WT": dice, "TC": dice / 2, "ET": dice / 4}, "val_cases": cases}
            ups.append(str(write_update(plan, site_keys, tmp_path / f"{s}-{r}.fedseg", s, digest,
                                        model(0.0, np.random.default_rng(i)), round_=r, metrics=metrics)))
        out = fed / f"global-r{r:04d}.fedseg"
        result = runner.invoke(app, ["aggregate", "--plan", str(fed / "plan.toml"), "--global",
                                     str(fed / f"global-r{r - 1:04d}.fedseg"), "--key", str(keydir / "coordinator.key"),
                                     "--out", str(out), "--json", *ups])
        assert result.exit_code == 0, result.output
        digest = read_artifact(out, plan, kind=Kind.GLOBAL).digest
        scores = {"site-a": (3, 0.9), "site-b": (1, 0.5)}
    report = json.loads(result.stdout)
    assert [p["round"] for p in report["curve"]] == [0, 1]
    assert report["validation"]["round"] == 1 and report["validation"]["cases"] == 4
    # round 0: WT (3 * 0.8 + 0.4) / 4 = 0.7; round 1: (2.7 + 0.5) / 4 = 0.8
    assert [round(p["dice"]["WT"], 6) for p in report["curve"]] == [0.7, 0.8]
    assert report["best"]["round"] == 1 and [s["site"] for s in report["best"]["sites"]] == ["site-a", "site-b"]
    signed = read_artifact(fed / "global-r0002.fedseg", plan, kind=Kind.GLOBAL).manifest["metrics"]
    assert signed["federated_validation"] == report["validation"]
    # the table's line after the verdicts: the received global's federated validation and the best so far
    ups = [str(write_update(plan, site_keys, tmp_path / f"{s}-3.fedseg", s, digest, model(0.0), round_=3,
                            metrics={"val_dice_before": {"WT": d, "TC": d, "ET": d}, "val_cases": c}))
           for s, (c, d) in {"site-a": (3, 0.95), "site-b": (1, 0.55)}.items()]
    result = runner.invoke(app, ["aggregate", "--plan", str(fed / "plan.toml"), "--global", str(fed / "global-r0002.fedseg"),
                                 "--key", str(keydir / "coordinator.key"), "--out", str(fed / "global-r0003.fedseg"),
                                 "--dry-run", *ups])
    assert result.exit_code == 0, result.output
    line = " ".join(result.stdout.split())  # (3 * 0.95 + 0.55) / 4 = 0.85 in every region
    assert "federated validation of global 2 (the sites' signed scores, 4 case(s)): WT 0.850 / TC 0.850 / ET 0.850" in line
    assert "best so far: global 2 (mean 0.850)" in line

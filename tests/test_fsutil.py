"""Crash-safe writes: the destination holds the old or the complete new content, never a partial file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from fedseg.fsutil import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temps


def test_write_bytes_text_json(tmp_path):
    atomic_write_bytes(tmp_path / "sub" / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.txt", "héllo")
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"
    text = (tmp_path / "c.json").read_text()
    assert json.loads(text) == {"a": [1, 2], "b": 1} and text.endswith("\n") and text.index('"a"') < text.index('"b"')


def test_callable_writer_and_mode(tmp_path):
    atomic_write_bytes(tmp_path / "k", lambda fh: (fh.write(b"ab"), fh.write(b"cd")), mode=0o600)
    assert (tmp_path / "k").read_bytes() == b"abcd"
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"a": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_failure_inside_the_block_keeps_the_old_file(tmp_path):
    dest = tmp_path / "f.txt"
    atomic_write_text(dest, "old")

    def half_then_crash(fh):
        fh.write(b"new but incomp")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(dest, half_then_crash)
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_failure_before_the_rename_leaves_no_destination_and_no_temp(tmp_path, monkeypatch, fail_at):
    def boom(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, fail_at, boom)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_bytes(tmp_path / "new.bin", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_temp_is_beside_the_destination_and_hidden(tmp_path):
    with atomic_path(tmp_path / "x.h5") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.h5.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"1")
        assert not (tmp_path / "x.h5").exists()
    assert (tmp_path / "x.h5").read_bytes() == b"1" and not tmp.exists()


def test_remove_stale_temps(tmp_path):
    (tmp_path / ".a.fedseg.abc.tmp").write_bytes(b"")
    (tmp_path / ".b.h5.def.tmp").write_bytes(b"")
    (tmp_path / "keep.tmp").write_bytes(b"")  # not hidden: not ours
    (tmp_path / "real.fedseg").write_bytes(b"")
    assert remove_stale_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp", "real.fedseg"]


# --- an output that is one of the command's own inputs is refused (resolved path, or device + inode) ---------


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_refuse_output_overlap_sees_through_links(tmp_path):
    from fedseg.errors import OutputOverlapError
    from fedseg.fsutil import refuse_output_overlap

    plan = tmp_path / "fed" / "plan.toml"
    plan.parent.mkdir()
    plan.write_text("x")
    os.link(plan, tmp_path / "hard.toml")
    os.symlink(plan, tmp_path / "soft.toml")
    for out in (plan, tmp_path / "fed" / ".." / "fed" / "plan.toml", tmp_path / "hard.toml", tmp_path / "soft.toml"):
        with pytest.raises(OutputOverlapError, match="is the command's own plan"):
            refuse_output_overlap(out, {"plan": plan, "key": None})
    with pytest.raises(OutputOverlapError, match="lies inside the dataset"):
        refuse_output_overlap(tmp_path / "fed" / "x" / "a.fedseg", {}, folders={"dataset": tmp_path / "fed"})
    refuse_output_overlap(tmp_path / "other.toml", {"plan": plan}, folders={"dataset": tmp_path / "fed"})


@pytest.fixture
def coordinator(tmp_path, plan, site_keys, keydir):
    import numpy as np

    from fedseg.federation.plan import write_plan
    from tests._aggregate_data import model, write_global, write_update

    fed = tmp_path / "fed"
    write_plan(plan, fed / "plan.toml")
    g = write_global(plan, site_keys, fed / "global-r0000.fedseg", model(0.0))
    ups = [write_update(plan, site_keys, tmp_path / f"{s}.fedseg", s, g.digest, model(0.0, np.random.default_rng(i)),
                        num_examples=10) for i, s in enumerate(("site-a", "site-b"))]
    os.link(fed / "plan.toml", tmp_path / "plan-link.toml")
    return fed, ups


@pytest.mark.parametrize("target", ["plan", "plan hard link", "global", "update", "key", "ledger is the plan"])
def test_aggregate_refuses_to_overwrite_its_inputs(coordinator, tmp_path, keydir, target):
    from typer.testing import CliRunner

    from fedseg.cli.app import app

    fed, ups = coordinator
    out, ledger = fed / "global-r0001.fedseg", None
    out = {"plan": fed / "plan.toml", "plan hard link": tmp_path / "plan-link.toml", "global": fed / "global-r0000.fedseg",
           "update": ups[1], "key": keydir / "coordinator.key"}.get(target, out)
    if target == "ledger is the plan":
        ledger = fed / "plan.toml"
    before = _snapshot(tmp_path)
    args = ["aggregate", "--plan", str(fed / "plan.toml"), "--global", str(fed / "global-r0000.fedseg"),
            "--key", str(keydir / "coordinator.key"), "--out", str(out), *map(str, ups)]
    result = CliRunner().invoke(app, [*args, *(["--ledger", str(ledger)] if ledger else [])])
    assert result.exit_code == 1, result.output
    assert "refusing to overwrite an input" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _snapshot(tmp_path) == before  # nothing written, nothing replaced


def test_library_workflows_refuse_outputs_that_are_inputs(tmp_path, plan, site_keys, keydir):
    from fedseg.errors import OutputOverlapError
    from fedseg.federation.plan import load_plan, write_plan
    from fedseg.workflow.init import init_federation
    from fedseg.workflow.initial import write_initial_global
    from fedseg.workflow.model_export import export_global
    from fedseg.workflow.site.export import export_update
    from fedseg.workflow.site.train import train_local
    from tests._train_data import make_dataset, tiny_plan

    write_plan(tiny_plan(plan), tmp_path / "plan.toml")
    p = load_plan(tmp_path / "plan.toml")
    g = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed")
    data = make_dataset(tmp_path / "data", train=1, val=0, shape=(8, 8, 8))
    before = _snapshot(tmp_path)
    for out in (g, tmp_path / "plan.toml", keydir / "site-a.key", data / "dataset.json", data / "cases" / "case-000.h5"):
        with pytest.raises(OutputOverlapError):
            train_local(p, g, data, site_keys["site-a"], out, device="cpu")
    for out in (g, tmp_path / "plan.toml"):
        with pytest.raises(OutputOverlapError):
            export_global(g, p, out)
        with pytest.raises(OutputOverlapError):
            export_update(tmp_path / "fed", p, site_keys["site-a"], out)
    with pytest.raises(OutputOverlapError, match="checkpoint file dataset.json"):
        export_update(data, p, site_keys["site-a"], data / "dataset.json")
    (tmp_path / "fed2").mkdir()
    os.link(keydir / "coordinator.key", tmp_path / "fed2" / "global-r0000.fedseg")
    with pytest.raises(OutputOverlapError, match="coordinator key"):
        init_federation(name="x", coordinator_key=tmp_path / "fed2" / "global-r0000.fedseg",
                        sites=[("site-a", keydir / "site-a.pub", None)], out_dir=tmp_path / "fed2")
    assert {k: v for k, v in _snapshot(tmp_path).items() if k.parent.name != "fed2"} == before
    assert sorted(p.name for p in (tmp_path / "fed2").iterdir()) == ["global-r0000.fedseg"]

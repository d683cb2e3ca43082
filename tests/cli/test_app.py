"""CLI of the foundation commands through CliRunner: keys, plan check, init, inspect; and `fedseg --help` speed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app

runner = CliRunner()
HEAVY = ("torch", "SimpleITK", "h5py", "scipy", "numpy", "nibabel", "matplotlib", "cryptography")


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


# ----------------------------------------------------------------------------------------------- help


def test_help_is_fast_and_imports_nothing_heavy():
    """`python -m fedseg --help` (the entry point) lists the commands without importing torch & co."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fedseg", "--help"], capture_output=True,
                          text=True, encoding="utf-8", timeout=60)  # not the locale's: ITK may have set it to C
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "fedseg" in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))
    for command in ("keys", "init", "plan", "inspect", "aggregate", "train-local", "evaluate"):
        assert command in proc.stdout
    assert elapsed < 5.0, f"fedseg --help took {elapsed:.2f}s"  # ~0.3s unloaded; generous for a busy CI box


def test_every_foundation_command_has_an_example():
    for args in (["keys", "new"], ["keys", "show"], ["plan", "check"], ["init"], ["inspect"]):
        result = run(*args, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout, args


def test_usage_error_exits_2():
    assert run("keys", "new").exit_code == 2
    assert run("no-such-command").exit_code == 2


# ----------------------------------------------------------------------------------------------- keys


def test_keys_new_and_show(tmp_path):
    result = run("keys", "new", "site-a", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site-a.key").exists() and (tmp_path / "site-a.pub").exists()
    key_id = result.stdout.split("key id:")[1].split()[0]
    shown = run("keys", "show", tmp_path / "site-a.pub")
    assert shown.exit_code == 0 and key_id in shown.stdout
    shown_private = run("keys", "show", tmp_path / "site-a.key", "--json")
    assert shown_private.exit_code == 0 and json.loads(shown_private.stdout)["key_id"] == key_id
    assert "PRIVATE" not in shown_private.stdout


def test_keys_new_refuses_to_overwrite(tmp_path):
    assert run("keys", "new", "site-a", "--out", tmp_path).exit_code == 0
    before = (tmp_path / "site-a.key").read_bytes()
    result = run("keys", "new", "site-a", "--out", tmp_path)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert (tmp_path / "site-a.key").read_bytes() == before


def test_keys_new_bad_name(tmp_path):
    result = run("keys", "new", "Site A", "--out", tmp_path)
    assert result.exit_code == 1 and "must match" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_keys_passphrase_env(tmp_path):
    env = {"FEDSEG_TEST_PASS": "s3cret"}
    assert run("keys", "new", "c", "--out", tmp_path, "--passphrase-env", "FEDSEG_TEST_PASS", env=env).exit_code == 0
    assert b"ENCRYPTED" in (tmp_path / "c.key").read_bytes()
    ok = run("keys", "show", tmp_path / "c.key", "--passphrase-env", "FEDSEG_TEST_PASS", env=env)
    assert ok.exit_code == 0 and "s3cret" not in ok.output
    wrong = run("keys", "show", tmp_path / "c.key", "--passphrase-env", "FEDSEG_TEST_PASS", env={"FEDSEG_TEST_PASS": "x"})
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.stderr
    unset = run("keys", "show", tmp_path / "c.key", "--passphrase-env", "FEDSEG_TEST_UNSET_VAR")
    assert unset.exit_code == 1 and "unset or empty" in unset.stderr
    plain = run("keys", "show", tmp_path / "c.key")
    assert plain.exit_code == 1 and "encrypted" in plain.stderr


def test_keys_show_errors(tmp_path):
    assert run("keys", "show", tmp_path / "missing.pub").exit_code == 2
    (tmp_path / "bad.pub").write_text("nonsense\n")
    result = run("keys", "show", tmp_path / "bad.pub")
    assert result.exit_code == 1 and "expected a public key line" in result.stderr


# ------------------------------------------------------------------------------------- init and plan


def _fake_rounds(monkeypatch):
    """Stand in for fedseg.workflow.initial (no model weights needed here): write a tiny signed global."""
    from fedseg.federation.artifact import write_artifact

    def write_initial_global(plan, key, out_dir, *, seed=0):
        path = Path(out_dir) / "global-r0000.fedseg"
        write_artifact(path, manifest={"kind": "global", "round": 0, "signer": plan.coordinator.id,
                                       "parent_sha256": None, "contributors": [], "strategy": "fedavg",
                                       "metrics": {}, "expires_at": "2099-01-01T00:00:00Z"},
                       tensors={"head.weight": np.full((3, 2), seed + 1.0, np.float32)}, key=key, plan=plan)
        return path

    monkeypatch.setitem(sys.modules, "fedseg.workflow.initial",
                        types.SimpleNamespace(write_initial_global=write_initial_global))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """Key pairs made once by `fedseg keys new` for the module."""
    d = tmp_path_factory.mktemp("keys")
    for name in ("coord", "site-a", "site-b"):
        assert run("keys", "new", name, "--out", d).exit_code == 0
    return d


@pytest.fixture(scope="module")
def fed(tmp_path_factory, keys) -> Path:
    """`fedseg init` run once through the CLI; tests must not modify its files (copy them first)."""
    out = tmp_path_factory.mktemp("init")
    with pytest.MonkeyPatch.context() as mp:
        _fake_rounds(mp)
        result = run("init", "--name", "brats-fl", "--coordinator-key", keys / "coord.key", "--site",
                     f"site-a={keys / 'site-a.pub'}", "--site", f"site-b={keys / 'site-b.pub'}", "--out", out / "fed",
                     "--strategy", "median", "--min-sites", "2", "--rounds", "4", "--widths", "8,16,32",
                     "--patch-size", "32,32,32", "--steps", "5", "--spacing", "1.5", "--early-stop-patience", "2")
    assert result.exit_code == 0, result.output
    return out


def test_init_writes_plan_and_global(fed):
    from fedseg.federation.plan import load_plan

    plan = load_plan(fed / "fed" / "plan.toml")
    assert plan.name == "brats-fl" and [s.id for s in plan.sites] == ["site-a", "site-b"]
    assert plan.coordinator.id == "coordinator" and plan.rounds == 4
    assert plan.aggregation.strategy.value == "median" and plan.aggregation.min_sites == 2
    assert plan.aggregation.early_stop_patience == 2
    assert plan.model.widths == (8, 16, 32) and plan.training.patch_size == (32, 32, 32)
    assert plan.training.steps_per_round == 5 and plan.preprocessing.spacing == (1.5, 1.5, 1.5)
    assert (fed / "fed" / "global-r0000.fedseg").exists()


def test_init_workflow_without_global(tmp_path):
    from fedseg.federation.keys import generate_keypair
    from fedseg.workflow.init import init_federation

    for name in ("coord", "site-a"):
        generate_keypair(name, tmp_path)
    result = init_federation(name="x", coordinator_key=tmp_path / "coord.key", sites=[("site-a", tmp_path / "site-a.pub", None)],
                             out_dir=tmp_path / "fed", write_global=False)
    assert result.global_path is None and result.plan_path.exists()
    assert sorted(p.name for p in (tmp_path / "fed").iterdir()) == ["plan.toml"]


def test_init_records_enrolled_cases_and_defaults_to_a_majority_quorum(tmp_path, keys, monkeypatch):
    from fedseg.federation.keys import generate_keypair
    from fedseg.federation.plan import load_plan

    _fake_rounds(monkeypatch)
    generate_keypair("site-c", tmp_path)
    sites = [f"site-a={keys / 'site-a.pub'}:120", "--site", f"site-b={keys / 'site-b.pub'}:85", "--site",
             f"site-c={tmp_path / 'site-c.pub'}"]
    result = run("init", "--name", "x", "--coordinator-key", keys / "coord.key", "--site", *sites, "--out", tmp_path / "f")
    assert result.exit_code == 0, result.output
    plan = load_plan(tmp_path / "f" / "plan.toml")
    assert [s.cases for s in plan.sites] == [120, 85, None]
    assert plan.aggregation.min_sites == 2  # a majority of 3
    assert "cases = 120" in (tmp_path / "f" / "plan.toml").read_text()
    shown = run("plan", "check", tmp_path / "f" / "plan.toml")
    assert shown.exit_code == 0 and "120" in shown.stdout


def test_init_with_privacy_prints_each_sites_noise(tmp_path, keys, monkeypatch):
    from fedseg.federation.plan import load_plan

    _fake_rounds(monkeypatch)
    sites = [f"site-a={keys / 'site-a.pub'}:120", "--site", f"site-b={keys / 'site-b.pub'}:85"]
    result = run("init", "--name", "x", "--coordinator-key", keys / "coord.key", "--site", *sites, "--out",
                 tmp_path / "f", "--privacy", "dp-sgd", "--target-epsilon", "3", "--rounds", "2", "--steps", "5")
    assert result.exit_code == 0, result.output
    assert "privacy dp-sgd: target ε 3" in result.stdout and "site-b: noise multiplier" in result.stdout
    shown = run("plan", "check", tmp_path / "f" / "plan.toml", "--json")
    planned = json.loads(shown.stdout)["planned_privacy"]
    assert planned["sites"]["site-a"]["steps"] == 10 and planned["sites"]["site-a"]["epsilon"] <= 3.0
    central = run("init", "--name", "y", "--coordinator-key", keys / "coord.key", "--site", *sites, "--out",
                  tmp_path / "g", "--privacy", "central")
    assert central.exit_code == 0, central.output
    assert load_plan(tmp_path / "g" / "plan.toml").aggregation.weighting.value == "uniform"
    assert "coordinator: noise multiplier" in central.stdout


def test_init_refuses_existing_plan(fed, keys):
    before = (fed / "fed" / "plan.toml").read_bytes()
    result = run("init", "--name", "again", "--coordinator-key", keys / "coord.key", "--site",
                 f"site-a={keys / 'site-a.pub'}", "--out", fed / "fed")
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert (fed / "fed" / "plan.toml").read_bytes() == before


@pytest.mark.parametrize(("extra", "message"), [
    (["--site", "site-a"], "expected ID=PUBFILE"),
    (["--site", "Bad_ID={pub}"], "must match"),
    (["--site", "site-a={pub}", "--site", "site-b={pub}"], "share one public key"),
    (["--site", "site-a={pub}", "--strategy", "magic"], "expected one of"),
    (["--site", "site-a={pub}", "--min-sites", "3"], "only 1 site"),
    (["--site", "site-a={pub}", "--rounds", "0"], "rounds must lie in"),
    (["--site", "site-a={pub}", "--patch-size", "a,b,c"], "comma-separated integers"),
])
def test_init_errors(tmp_path, monkeypatch, keys, extra, message):
    _fake_rounds(monkeypatch)
    args = [a.format(pub=keys / "site-a.pub") for a in extra]
    result = run("init", "--name", "x", "--coordinator-key", keys / "coord.key", "--out", tmp_path / "fed", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert not (tmp_path / "fed" / "plan.toml").exists()


def test_plan_check(fed):
    from fedseg.federation.plan import load_plan

    plan = load_plan(fed / "fed" / "plan.toml")
    result = run("plan", "check", fed / "fed" / "plan.toml")
    assert result.exit_code == 0 and plan.sha256 in result.stdout and "site-b" in result.stdout
    as_json = json.loads(run("plan", "check", fed / "fed" / "plan.toml", "--json").stdout)
    assert as_json["sha256"] == plan.sha256 and as_json["federation"]["name"] == "brats-fl"


def test_plan_check_errors(tmp_path):
    assert run("plan", "check", tmp_path / "none.toml").exit_code == 2
    (tmp_path / "bad.toml").write_text("format = 1\n[federation]\nname = 'x'\n")
    result = run("plan", "check", tmp_path / "bad.toml")
    assert result.exit_code == 1 and "bad.toml" in result.stderr and result.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------- inspect


@pytest.fixture(scope="module")
def real_global(fed, keys) -> Path:
    """A real round-0 global of the init fixture's plan (the init fixture writes a stand-in without the model)."""
    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.initial import write_initial_global

    plan = load_plan(fed / "fed" / "plan.toml")
    return write_initial_global(plan, load_private_key(keys / "coord.key"), fed / "real", seed=0)


def test_inspect_verified(fed, real_global):
    from fedseg.federation.plan import load_plan
    from fedseg.model.spec import model_tensor_spec

    name, spec = next(iter(model_tensor_spec(load_plan(fed / "fed" / "plan.toml").model).items()))
    result = run("inspect", real_global, "--plan", fed / "fed" / "plan.toml")
    assert result.exit_code == 0, result.output
    for text in ("verified", "global", "coordinator", name, str(tuple(spec.shape)), "digest"):
        assert text in result.stdout
    data = json.loads(run("inspect", real_global, "--plan", fed / "fed" / "plan.toml", "--json").stdout)
    assert data["verified"] is True and data["reason"] is None
    assert {"name": name, "shape": list(spec.shape), "dtype": "float32",
            "numel": int(np.prod(spec.shape))} in data["tensors"]
    assert data["manifest"]["kind"] == "global" and data["manifest"]["round"] == 0


def test_inspect_refuses_the_stand_in_global_that_train_local_would_refuse(fed):
    # the init fixture's stand-in global has a tensor the plan's model does not have: not verified
    result = run("inspect", fed / "fed" / "global-r0000.fedseg", "--plan", fed / "fed" / "plan.toml", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["verified"] is False


def test_inspect_without_plan_shows_unverified_manifest_and_exits_1(fed):
    result = run("inspect", fed / "fed" / "global-r0000.fedseg")
    assert result.exit_code == 1
    assert "NOT verified" in result.stdout and "head.weight" in result.stdout
    assert "UNVERIFIED" in result.stderr and "--plan" in result.stderr
    data = json.loads(run("inspect", fed / "fed" / "global-r0000.fedseg", "--json").stdout)
    assert data["verified"] is False and "give --plan" in data["reason"]


def test_inspect_tampered_file_says_why(fed, tmp_path):
    path = tmp_path / "global-r0000.fedseg"
    data = bytearray((fed / "fed" / "global-r0000.fedseg").read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    result = run("inspect", path, "--plan", fed / "fed" / "plan.toml")
    assert result.exit_code == 1
    assert "NOT verified" in result.stdout and "SHA-256 does not match" in result.stderr
    as_json = json.loads(run("inspect", path, "--plan", fed / "fed" / "plan.toml", "--json").stdout)
    assert as_json["verified"] is False and "SHA-256" in as_json["reason"]


def test_inspect_errors(fed, tmp_path):
    assert run("inspect", tmp_path / "missing.fedseg").exit_code == 2
    (tmp_path / "junk.fedseg").write_bytes(b"\x80\x04junk")
    result = run("inspect", tmp_path / "junk.fedseg", "--plan", fed / "fed" / "plan.toml")
    assert result.exit_code == 1 and "bad magic" in result.stderr
    (tmp_path / "plan.toml").write_text("not toml [")
    bad_plan = run("inspect", fed / "fed" / "global-r0000.fedseg", "--plan", tmp_path / "plan.toml")
    assert bad_plan.exit_code == 1 and "does not parse" in bad_plan.stderr


def test_inspect_of_an_oversized_file_names_the_limit_without_a_missing_option(tmp_path):
    big = tmp_path / "big.fedseg"
    with open(big, "wb") as fh:  # sparse: 5 GiB declared, nothing allocated
        fh.truncate(5 << 30)
    result = run("inspect", big)
    assert result.exit_code == 1 and "the limit is 4294967296" in result.stderr
    assert "--max-bytes" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

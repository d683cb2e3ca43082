"""A site trusts only what it verified (issue 12.2, 12.5, 12.6, 12.8): state with the data, plan bounds, metrics."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.errors import BindingError, StateError
from fedseg.federation.artifact import read_artifact
from fedseg.federation.plan import Plan, write_plan
from fedseg.federation.state import SiteState
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.site.received import read_global
from fedseg.workflow.site.train import train_local
from tests._aggregate_data import write_global
from tests._train_data import make_dataset, tiny_plan


@pytest.fixture
def fed(plan: Plan, site_keys: dict[str, Any], tmp_path: Path) -> tuple[Plan, Path, Path]:
    p = tiny_plan(plan, steps_per_round=1)
    global0 = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=3)
    data = make_dataset(tmp_path / "data", train=3, val=3, shape=(20, 20, 20))
    return p, global0, data


def _global(p: Plan, site_keys: dict[str, Any], path: Path, round_: int, contributors: int) -> Path:
    from fedseg.model.spec import model_tensor_spec

    tensors = {k: np.zeros(s.shape, np.float32) for k, s in model_tensor_spec(p.model).items()}
    art = write_global(p, site_keys, path, tensors, round_=round_, parent="0" * 64)
    if contributors:  # rewrite with a contributor list (write_global's helper signs an empty one)
        from fedseg.federation.artifact import write_artifact

        manifest = dict(art.manifest)
        manifest["contributors"] = [{"site": f"site-{c}", "sha256": "1" * 64, "num_examples": 3}
                                    for c in "abc"[:contributors]]
        for key in ("federation_id", "plan_sha256", "payload_sha256", "payload_bytes", "dtype", "tensors",
                    "software", "format"):
            manifest.pop(key, None)
        write_artifact(path, manifest=manifest, tensors=tensors, key=site_keys["coordinator"], plan=p)
    return path


def test_rollback_protection_does_not_depend_on_the_output_folder(fed, site_keys, tmp_path: Path) -> None:
    p, global0, data = fed
    first = train_local(p, global0, data, site_keys["site-a"], tmp_path / "out1" / "u1.fedseg", device="cpu")
    assert first.state_path == data / ".fedseg" / f"state-{p.federation_id}.json"
    SiteState(first.state_path).accept_global(p.federation_id, 1, "2" * 64)  # the site moved on to round 1
    again = tmp_path / "elsewhere" / "u-again.fedseg"
    with pytest.raises(StateError, match="rollback refused"):
        train_local(p, global0, data, site_keys["site-a"], again, device="cpu")
    assert not again.exists() and not again.parent.exists()


def test_a_new_federation_on_the_same_data_has_its_own_state(fed, plan, site_keys, tmp_path: Path) -> None:
    p, global0, data = fed
    train_local(p, global0, data, site_keys["site-a"], tmp_path / "a" / "u.fedseg", device="cpu")
    other = tiny_plan(plan.with_settings(federation_id="00000000-0000-4000-8000-000000000001"), steps_per_round=1)
    g_other = write_initial_global(other, site_keys["coordinator"], tmp_path / "fed2", seed=3)
    result = train_local(other, g_other, data, site_keys["site-a"], tmp_path / "b" / "u.fedseg", device="cpu")
    assert result.state_path != data / ".fedseg" / f"state-{p.federation_id}.json"
    assert sorted(x.name for x in (data / ".fedseg").iterdir()) == sorted(
        [f"state-{p.federation_id}.json", f"state-{other.federation_id}.json",  # and each its kept optimizer
         f"state-{p.federation_id}.json.optimizer-r0001.h5", f"state-{other.federation_id}.json.optimizer-r0001.h5"])


def test_site_rejects_a_global_below_the_plan_quorum_or_beyond_its_rounds(fed, site_keys, tmp_path: Path) -> None:
    p, _, _ = fed
    assert p.aggregation.min_sites == 2
    thin = _global(p, site_keys, tmp_path / "g1-thin.fedseg", round_=1, contributors=1)
    with pytest.raises(BindingError, match="fewer than the plan's quorum of 2"):
        read_global(p, thin, now=_made(thin, p))
    late = _global(p, site_keys, tmp_path / "g11.fedseg", round_=p.rounds + 1, contributors=3)
    with pytest.raises(BindingError, match=f"the plan has {p.rounds} round"):
        read_global(p, late, now=_made(late, p))
    ok = _global(p, site_keys, tmp_path / "g1.fedseg", round_=1, contributors=2)
    assert read_global(p, ok, now=_made(ok, p)).round == 1


def _made(path: Path, p: Plan):  # noqa: ANN202 - the file's own created_at, so expiry never bites
    from fedseg.federation.manifest import parse_timestamp

    return parse_timestamp(read_artifact(path, p).manifest["created_at"])


@pytest.mark.parametrize("case", ["expired", "wrong-shape", "extra-tensor", "missing-tensor", "scalar-tensor"])
def test_inspect_runs_the_checks_train_local_runs(fed, site_keys, tmp_path: Path, case: str) -> None:
    from fedseg.model.spec import model_tensor_spec

    p, _, _ = fed
    plan_path = tmp_path / "plan.toml"
    write_plan(p, plan_path)
    tensors = {k: np.zeros(s.shape, np.float32) for k, s in model_tensor_spec(p.model).items()}
    name = next(iter(tensors))
    if case == "wrong-shape":
        tensors[name] = np.zeros((3, 3), np.float32)
    elif case == "extra-tensor":
        tensors["extra.weight"] = np.zeros(2, np.float32)
    elif case == "missing-tensor":
        del tensors[name]
    elif case == "scalar-tensor":
        tensors[name] = np.zeros((), np.float32)
    path = tmp_path / "g0.fedseg"
    write_global(p, site_keys, path, tensors)  # expires 2024-02-01: every case is expired too
    if case != "expired":
        with pytest.raises(Exception) as info:
            read_global(p, path, now=_made(path, p))
        assert "expired" not in str(info.value)
    result = CliRunner().invoke(app, ["inspect", str(path), "--plan", str(plan_path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verified"] is False


def test_site_metrics_leave_only_over_enough_cases(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan, steps_per_round=1)
    g0 = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=3)
    few = make_dataset(tmp_path / "few", train=3, val=1, shape=(20, 20, 20))
    out = tmp_path / "few.fedseg"
    result = train_local(p, g0, few, site_keys["site-a"], out, device="cpu")
    metrics = read_artifact(out, p).manifest["metrics"]
    assert "val_dice_before" not in metrics and "val_dice_after" not in metrics and "train_loss" in metrics
    assert result.val_dice_before is not None  # the site still sees its own number
    enough = make_dataset(tmp_path / "enough", train=3, val=3, shape=(20, 20, 20))
    p3 = replace(p, federation_id="00000000-0000-4000-8000-000000000002")
    g3 = write_initial_global(p3, site_keys["coordinator"], tmp_path / "fed3", seed=3)
    out3 = tmp_path / "enough.fedseg"
    train_local(p3, g3, enough, site_keys["site-a"], out3, device="cpu")
    metrics3 = read_artifact(out3, p3).manifest["metrics"]
    assert metrics3["val_cases"] == 3 and set(metrics3["val_dice_after"]) == {"WT", "TC", "ET"}

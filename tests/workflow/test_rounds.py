"""Round-0 global, train_local and export_update: happy path, resume, and every bad input refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.errors import (
    ArtifactError,
    BindingError,
    DatasetError,
    PlanError,
    SignatureError,
    StateError,
    TrainingError,
)
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.federation.state import SiteState, default_state_path
from fedseg.model.spec import model_tensor_spec
from fedseg.train.checkpoint import load_checkpoint
from fedseg.train.loop import StepInfo
from fedseg.workflow.initial import write_initial_global
from fedseg.workflow.site.export import export_update
from fedseg.workflow.site.train import train_local
from tests._train_data import make_dataset, tiny_plan


@pytest.fixture
def fed(plan, site_keys, tmp_path: Path):
    """A tiny plan, its round-0 global and a 2 train + 1 val dataset of 20³ cases."""
    p = tiny_plan(plan)
    global_path = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed", seed=3)
    data = make_dataset(tmp_path / "data", train=2, val=1, shape=(20, 20, 20))
    return p, global_path, data


def test_initial_global_verifies_and_is_seeded(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan)
    a = write_initial_global(p, site_keys["coordinator"], tmp_path / "a", seed=1)
    b = write_initial_global(p, site_keys["coordinator"], tmp_path / "b", seed=1)
    c = write_initial_global(p, site_keys["coordinator"], tmp_path / "c", seed=2)
    assert a.name == "global-r0000.fedseg"
    art = read_artifact(a, p, kind=Kind.GLOBAL, spec=model_tensor_spec(p.model))
    m = art.manifest
    assert (m["round"], m["signer"], m["parent_sha256"], m["weights"]) == (0, "coordinator", None, "full")
    assert m["contributors"] == [] and m["expires_at"] > m["created_at"]
    assert read_artifact(b, p).digest == art.digest  # same seed -> same weights
    assert read_artifact(c, p).digest != art.digest
    with pytest.raises(PlanError, match="coordinator"):
        write_initial_global(p, site_keys["site-a"], tmp_path / "d")


def test_train_local_exports_a_verified_update(fed, site_keys, tmp_path: Path) -> None:
    p, global_path, data = fed
    out = tmp_path / "site-a" / "site-a-r0001.fedseg"
    result = train_local(p, global_path, data, site_keys["site-a"], out, device="cpu")
    assert result.update_path == out and result.steps == 4 and result.round == 1
    art = read_artifact(out, p, kind=Kind.UPDATE, spec=model_tensor_spec(p.model))
    m = art.manifest
    assert m["signer"] == "site-a" and m["round"] == 1 and m["weights"] == "full"
    assert m["parent_sha256"] == read_artifact(global_path, p).digest
    assert m["num_examples"] == 2  # training cases, not patches
    # 1 validation and 2 training cases: fewer than metrics_min_cases (3), so only the step count leaves the site
    assert m["metrics"] == {"steps": 4}
    assert set(result.val_dice_after) == {"WT", "TC", "ET"}  # ... while the site keeps its own figures
    assert m["training"]["patch_size"] == [16, 16, 16] and m["model"]["widths"] == [4, 8]
    assert {k: v.shape for k, v in art.tensors.items()} == {k: s.shape for k, s in model_tensor_spec(p.model).items()}
    assert (out.parent / "site-a-r0001.fedseg.ckpt" / "checkpoint.json").exists()
    assert SiteState(data / ".fedseg" / f"state-{p.federation_id}.json").last(p.federation_id)["round"] == 0
    # a float16 delta export of the same checkpoint
    delta = export_update(result.checkpoint_dir, p, site_keys["site-a"], tmp_path / "d.fedseg", dtype="float16",
                          weights="delta")
    d = read_artifact(delta, p, kind=Kind.UPDATE, spec=model_tensor_spec(p.model))
    g = read_artifact(global_path, p)
    name = "head.weight"
    np.testing.assert_allclose(d.tensors[name].astype(np.float32), art.tensors[name] - g.tensors[name], atol=2e-3)
    assert d.manifest["dtype"] == "float16" and d.manifest["weights"] == "delta"


def test_train_local_without_validation_after_scores_nothing(fed, site_keys, tmp_path: Path) -> None:
    p, global_path, data = fed
    phases: list[str] = []
    before = {"WT": 0.5, "TC": 0.25, "ET": 0.125}  # the caller's score of the global (fedseg simulate)
    result = train_local(p, global_path, data, site_keys["site-a"], tmp_path / "u.fedseg", device="cpu",
                         val_dice_before=before, validate_after=False,
                         progress=lambda e: phases.append(getattr(e, "name", "")))
    assert result.val_dice_before == before and result.val_dice_after is None
    assert not any(name.startswith("validate") for name in phases)  # the model was not scored at all
    read_artifact(tmp_path / "u.fedseg", p, kind=Kind.UPDATE)


def test_resume_after_interruption_gives_the_same_weights(fed, site_keys, tmp_path: Path) -> None:
    p, global_path, data = fed
    p = tiny_plan(p, steps_per_round=6)
    global_path = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed6", seed=3)
    key = site_keys["site-b"]
    full = train_local(p, global_path, data, key, tmp_path / "a" / "u.fedseg", device="cpu", export=False,
                       checkpoint_every=2)

    def interrupt(event: object) -> None:
        if isinstance(event, StepInfo) and event.step == 5:
            raise KeyboardInterrupt

    out = tmp_path / "b" / "u.fedseg"
    with pytest.raises(KeyboardInterrupt):
        train_local(p, global_path, data, key, out, device="cpu", checkpoint_every=2, progress=interrupt)
    meta, _ = load_checkpoint(out.with_name("u.fedseg.ckpt"))
    assert meta["step"] == 4 and not meta["complete"] and not out.exists()
    with pytest.raises(TrainingError, match="--resume"):
        train_local(p, global_path, data, key, out, device="cpu")
    resumed = train_local(p, global_path, data, key, out, device="cpu", resume=True, checkpoint_every=2)
    _, w_full = load_checkpoint(full.checkpoint_dir)
    _, w_resumed = load_checkpoint(resumed.checkpoint_dir)
    for name in w_full:
        np.testing.assert_array_equal(w_full[name], w_resumed[name], err_msg=name)
    assert resumed.train_loss == full.train_loss
    assert out.exists()


def test_patch_larger_than_every_case_is_padded(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan, patch_size=[24, 24, 24], steps_per_round=2)
    g = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed")
    data = make_dataset(tmp_path / "data", train=1, val=1, shape=(12, 14, 10))
    result = train_local(p, g, data, site_keys["site-a"], tmp_path / "u.fedseg", device="cpu")
    assert result.update_path is not None and result.val_dice_after is not None


def _no_update(out: Path) -> None:
    assert not out.exists()


def test_global_from_another_plan_is_refused(fed, plan, keydir, site_keys, tmp_path: Path) -> None:
    p, _, data = fed
    other = tiny_plan(plan, learning_rate=5e-3)  # same members, other settings -> other plan hash
    g_other = write_initial_global(other, site_keys["coordinator"], tmp_path / "other")
    out = tmp_path / "u.fedseg"
    with pytest.raises(BindingError, match="plan"):
        train_local(p, g_other, data, site_keys["site-a"], out, device="cpu")
    _no_update(out)


def test_old_round_is_refused(fed, site_keys, tmp_path: Path) -> None:
    p, g, data = fed
    out = tmp_path / "u.fedseg"
    state = SiteState(default_state_path(data, p.federation_id))
    state.accept_global(p.federation_id, 0, "0" * 64)
    state.accept_global(p.federation_id, 1, "1" * 64)
    with pytest.raises(StateError, match="older"):
        train_local(p, g, data, site_keys["site-a"], out, device="cpu")
    _no_update(out)


def test_tampered_global_is_refused(fed, site_keys, tmp_path: Path) -> None:
    p, g, data = fed
    raw = bytearray(g.read_bytes())
    raw[-100] ^= 0xFF  # a byte of the payload
    bad = tmp_path / "tampered.fedseg"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "u.fedseg"
    with pytest.raises(ArtifactError, match="SHA-256"):
        train_local(p, bad, data, site_keys["site-a"], out, device="cpu")
    _no_update(out)


@pytest.mark.parametrize("who", ["outsider", "coordinator"])
def test_key_not_a_site_is_refused(fed, site_keys, tmp_path: Path, who: str) -> None:
    p, g, data = fed
    out = tmp_path / "u.fedseg"
    with pytest.raises(PlanError, match="expected the key of one of the sites"):
        train_local(p, g, data, site_keys[who], out, device="cpu")
    _no_update(out)


def test_dataset_not_matching_the_plan_is_refused(fed, site_keys, tmp_path: Path) -> None:
    p, g, _ = fed
    out = tmp_path / "u.fedseg"
    other = make_dataset(tmp_path / "d1", train=1, val=0, preprocessing=PreprocessConfig(spacing=(2.0, 2.0, 2.0)))
    with pytest.raises(DatasetError, match=r"spacing=\[2.0, 2.0, 2.0\]"):
        train_local(p, g, other, site_keys["site-a"], out, device="cpu")
    swapped = make_dataset(tmp_path / "d2", train=1, val=0, modalities=("t1ce", "t1", "t2", "flair"))
    with pytest.raises(DatasetError, match="modalities"):
        train_local(p, g, swapped, site_keys["site-a"], out, device="cpu")
    _no_update(out)


def test_empty_train_split_is_refused(fed, site_keys, tmp_path: Path) -> None:
    p, g, _ = fed
    data = make_dataset(tmp_path / "d", train=0, val=1)
    out = tmp_path / "u.fedseg"
    with pytest.raises(TrainingError, match="train split is empty"):
        train_local(p, g, data, site_keys["site-a"], out, device="cpu")
    _no_update(out)


def test_nan_loss_stops_and_exports_nothing(plan, site_keys, tmp_path: Path) -> None:
    p = tiny_plan(plan)
    g = write_initial_global(p, site_keys["coordinator"], tmp_path / "fed")
    data = make_dataset(tmp_path / "d", train=1, val=0, nan_case=True)
    out = tmp_path / "u.fedseg"
    with pytest.raises(TrainingError, match="loss became nan"):
        train_local(p, g, data, site_keys["site-a"], out, device="cpu")
    _no_update(out)
    with pytest.raises(TrainingError, match="finish it with"):
        export_update(out.with_name("u.fedseg.ckpt"), p, site_keys["site-a"], out)
    _no_update(out)


def test_export_refuses_another_sites_key(fed, site_keys, tmp_path: Path) -> None:
    p, g, data = fed
    result = train_local(p, g, data, site_keys["site-a"], tmp_path / "u.fedseg", device="cpu", export=False)
    with pytest.raises(PlanError, match="site 'site-a'"):
        export_update(result.checkpoint_dir, p, site_keys["site-b"], tmp_path / "x.fedseg")
    with pytest.raises(SignatureError):
        # artifact layer refuses too: a site cannot sign as another (defence in depth)
        from fedseg.federation.artifact import write_artifact

        write_artifact(tmp_path / "y.fedseg", manifest={"kind": "update", "round": 1, "signer": "site-a"},
                       tensors={"a": np.zeros(1, np.float32)}, key=site_keys["site-b"], plan=p)
    assert not (tmp_path / "x.fedseg").exists()


def test_expired_global_and_update_as_global_are_refused(fed, site_keys, tmp_path: Path) -> None:
    from fedseg.federation.artifact import write_artifact

    p, g, data = fed
    art = read_artifact(g, p)
    manifest = {k: v for k, v in art.manifest.items() if k not in ("payload_sha256", "payload_bytes")}
    manifest["expires_at"] = "2020-01-01T00:00:00Z"
    expired = tmp_path / "expired.fedseg"
    write_artifact(expired, manifest=manifest, tensors=art.tensors, key=site_keys["coordinator"], plan=p)
    out = tmp_path / "u.fedseg"
    with pytest.raises(BindingError, match="expired"):
        train_local(p, expired, data, site_keys["site-a"], out, device="cpu")
    update = dict(manifest, kind="update", signer="site-c", round=1, expires_at=None)
    as_update = tmp_path / "update.fedseg"
    write_artifact(as_update, manifest=update, tensors=art.tensors, key=site_keys["site-c"], plan=p)
    with pytest.raises(BindingError, match="expected a global"):
        train_local(p, as_update, data, site_keys["site-a"], out, device="cpu")
    _no_update(out)

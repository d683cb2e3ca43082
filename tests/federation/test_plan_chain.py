"""The signed plan chain: versions, signatures, membership per round, revocation, rotation, rollback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedseg.errors import BindingError, PlanError, SignatureError, StateError
from fedseg.federation.artifact import read_artifact, write_artifact
from fedseg.federation.keys import generate_keypair, load_private_key
from fedseg.federation.plan import load_plan
from fedseg.federation.plan_chain import (
    check_trusted,
    load_chain,
    sign_plan,
    update_filename,
    write_plan_update,
)
from fedseg.federation.plan_toml import plan_to_toml
from fedseg.federation.plan_update import PlanChanges, describe_changes, next_version
from fedseg.federation.signing import sign_manifest, verify_manifest_signature
from tests._plan_chain import signed_manifest, write_root, write_update


@pytest.fixture
def extra(keydir: Path):
    """Keys for a joining site (site-d), site-b's new key and a new coordinator key."""
    for name in ("site-d", "site-b2", "coord2"):
        generate_keypair(name, keydir)
    return {n: load_private_key(keydir / f"{n}.key") for n in ("site-d", "site-b2", "coord2")}


def _verify(plan, key, *, signer, round_, kind="update"):
    manifest = signed_manifest(plan, key, signer=signer, round_=round_, kind=kind)
    return verify_manifest_signature("f", manifest, key.key_id, sign_manifest(manifest, key, "f"), plan, None)


def test_root_keeps_its_hash_and_is_version_1(tmp_path, plan) -> None:
    root = write_root(tmp_path / "fed", plan)
    assert (root.version, root.from_round, root.versions) == (1, 0, (root,))
    assert root.sha256 == load_plan(tmp_path / "fed" / "plan.toml").sha256
    assert "chain" not in root.to_dict()


def test_site_joins_at_round_2(tmp_path, plan, site_keys, extra) -> None:
    fed = tmp_path / "fed"
    chain = write_update(fed, write_root(fed, plan), site_keys["coordinator"], from_round=2,
                         add_sites=(("site-d", extra["site-d"].public_key, 5),))
    assert chain.version == 2 and [v.version for v in chain.versions] == [1, 2]
    assert chain.versions[1].link.previous_sha256 == chain.versions[0].sha256
    assert load_plan(fed / "plan.toml").sha256 == chain.sha256  # the root file finds its updates
    assert "site-d" not in {s.id for s in chain.in_force(1).sites}
    assert _verify(chain, extra["site-d"], signer="site-d", round_=2).id == "site-d"
    with pytest.raises(SignatureError, match="'site-d' signs from round 2 on .* round 1"):
        _verify(chain, extra["site-d"], signer="site-d", round_=1)
    assert describe_changes(chain.versions[0], chain) == ["+site site-d"]


def test_site_key_rotated_at_round_3(tmp_path, plan, site_keys, extra) -> None:
    fed = tmp_path / "fed"
    chain = write_update(fed, write_root(fed, plan), site_keys["coordinator"], from_round=3,
                         rotate_sites=(("site-b", extra["site-b2"].public_key),))
    assert _verify(chain, site_keys["site-b"], signer="site-b", round_=2).id == "site-b"  # made under v1
    assert _verify(chain, extra["site-b2"], signer="site-b", round_=3).id == "site-b"
    with pytest.raises(SignatureError, match="of 'site-b' is no longer a member key at round 3"):
        _verify(chain, site_keys["site-b"], signer="site-b", round_=3)
    with pytest.raises(SignatureError, match="signs from round 3 on"):
        _verify(chain, extra["site-b2"], signer="site-b", round_=2)


def test_revoked_key_refused_from_its_round(tmp_path, plan, site_keys) -> None:
    fed = tmp_path / "fed"
    key = site_keys["site-c"]
    chain = write_update(fed, write_root(fed, plan), site_keys["coordinator"], from_round=2, revoke=(key.key_id,))
    assert "site-c" not in {s.id for s in chain.sites}
    assert _verify(chain, key, signer="site-c", round_=1).id == "site-c"
    with pytest.raises(SignatureError, match=f"key {key.key_id} of 'site-c', revoked from round 2 .*round 2"):
        _verify(chain, key, signer="site-c", round_=2)
    # an update made under the older version for a later round is refused too
    old = {"kind": "update", "round": 4, "signer": "site-c", "federation_id": plan.federation_id,
           "plan_sha256": chain.versions[0].sha256}
    with pytest.raises(SignatureError, match="revoked from round 2"):
        verify_manifest_signature("f", old, key.key_id, sign_manifest(old, key, "f"), chain, None)
    with pytest.raises(PlanError, match="already revoked"):
        next_version(chain, PlanChanges(from_round=3, revoke=(key.key_id,)))


def test_coordinator_key_rotation_signed_by_old_key(tmp_path, plan, site_keys, extra) -> None:
    fed = tmp_path / "fed"
    v2 = write_update(fed, write_root(fed, plan), site_keys["coordinator"], from_round=2,
                      coordinator_key=extra["coord2"].public_key)
    assert v2.coordinator.key_id == extra["coord2"].key_id
    assert _verify(v2, site_keys["coordinator"], signer="coordinator", round_=1, kind="global")
    assert _verify(v2, extra["coord2"], signer="coordinator", round_=2, kind="global")
    with pytest.raises(SignatureError, match="no longer a member key at round 2"):
        _verify(v2, site_keys["coordinator"], signer="coordinator", round_=2, kind="global")
    v3 = next_version(v2, PlanChanges(from_round=3, rounds=20))
    write_plan_update(v3, site_keys["coordinator"], fed / update_filename(3))  # the old key: refused
    with pytest.raises(SignatureError, match="must be signed by coordinator 'coordinator' key "
                       f"{extra['coord2'].key_id} of plan v2"):
        load_chain(fed)
    write_plan_update(v3, extra["coord2"], fed / update_filename(3))
    assert load_chain(fed).rounds == 20


def test_unsigned_or_altered_update_refused(tmp_path, plan, site_keys) -> None:
    fed = tmp_path / "fed"
    root = write_root(fed, plan)
    nxt = next_version(root, PlanChanges(from_round=2, rounds=12))
    (fed / update_filename(2)).write_text(plan_to_toml(nxt))
    with pytest.raises(SignatureError, match="unsigned plan update is refused"):
        load_chain(fed)
    signed = sign_plan(nxt, site_keys["coordinator"])
    (fed / update_filename(2)).write_bytes(signed.replace(b"rounds = 12", b"rounds = 13"))
    with pytest.raises(SignatureError, match="does not verify"):
        load_chain(fed)
    write_plan_update(nxt, site_keys["site-a"], fed / update_filename(2))
    with pytest.raises(SignatureError, match="must be signed by coordinator"):
        load_chain(fed)


def test_wrongly_chained_updates_refused(tmp_path, plan, site_keys) -> None:
    fed = tmp_path / "fed"
    root = write_root(fed, plan)
    key = site_keys["coordinator"]
    nxt = next_version(root, PlanChanges(from_round=2, rounds=12))
    wrong_prev = replace(nxt, link=replace(nxt.link, previous_sha256="0" * 64), stated=None)
    write_plan_update(wrong_prev, key, fed / update_filename(2))
    with pytest.raises(PlanError, match="does not follow this chain"):
        load_chain(fed)
    (fed / update_filename(2)).unlink()
    skipped = replace(nxt, link=replace(nxt.link, version=3), stated=None)
    write_plan_update(skipped, key, fed / update_filename(3))
    with pytest.raises(PlanError, match="expected version 2 after v1"):
        load_chain(fed)
    (fed / update_filename(3)).unlink()
    other = plan.with_settings(rounds=3)  # made from another plan than this chain's root
    write_plan_update(next_version(other, PlanChanges(from_round=2, rounds=4)), key, fed / update_filename(2))
    with pytest.raises(PlanError, match="does not follow"):
        load_chain(fed)


def test_rollback_and_fork_refused(tmp_path, plan, site_keys) -> None:
    fed = tmp_path / "fed"
    v1 = write_root(fed, plan)
    v2 = write_update(fed, v1, site_keys["coordinator"], from_round=2, rounds=12)
    v3 = write_update(fed, v2, site_keys["coordinator"], from_round=3, rounds=14)
    check_trusted(v3, 2, v2.sha256, "state")
    with pytest.raises(StateError, match="rollback to an older plan version refused"):
        check_trusted(load_chain(fed / update_filename(2)), 3, v3.sha256, "state")
    with pytest.raises(StateError, match="forked plan chain"):
        check_trusted(v3, 3, "f" * 64, "state")
    assert load_chain(fed / update_filename(2)).version == 2  # an update file names its own version
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "plan.toml").write_bytes((fed / update_filename(2)).read_bytes())  # an update posing as the root
    with pytest.raises(PlanError, match="root of a plan chain is version 1"):
        load_chain(copy)
    (fed / update_filename(2)).write_bytes(sign_plan(next_version(v1, PlanChanges(from_round=2, rounds=99)),
                                                     site_keys["coordinator"]))
    with pytest.raises(PlanError, match="does not follow this chain"):
        load_chain(fed)  # v3 names the v2 it was made after, not this other v2


def test_artifacts_bind_their_plan_version(tmp_path, plan, site_keys, extra) -> None:
    fed = tmp_path / "fed"
    v1 = write_root(fed, plan)
    tensors = {"w": np.ones((2, 2), np.float32)}

    def update(chain, round_, path):
        manifest = {"kind": "update", "round": round_, "signer": "site-a", "parent_sha256": None, "weights": "full",
                    "num_examples": 1, "metrics": {}, "model": {}, "created_at": "2024-01-01T00:00:00Z"}
        return write_artifact(path, manifest=manifest, tensors=tensors, key=site_keys["site-a"], plan=chain)

    old = update(v1, 1, tmp_path / "u1.fedseg")
    assert "plan_version" not in old.manifest  # version 1 writes the manifest as before
    v2 = write_update(fed, v1, site_keys["coordinator"], from_round=2, add_sites=(("site-d", extra["site-d"].public_key, 5),))
    assert read_artifact(tmp_path / "u1.fedseg", v2).round == 1  # still verifies for the round it was made in
    new = update(v2, 2, tmp_path / "u2.fedseg")
    assert (new.manifest["plan_version"], new.manifest["plan_sha256"]) == (2, v2.sha256)
    assert read_artifact(tmp_path / "u2.fedseg", v2).round == 2
    with pytest.raises(BindingError, match="made for federation"):
        read_artifact(tmp_path / "u2.fedseg", v1)  # a chain that lacks v2
    early = {"kind": "update", "round": 1, "signer": "site-a", "federation_id": plan.federation_id,
             "plan_sha256": v2.sha256, "plan_version": 2}
    key = site_keys["site-a"]
    with pytest.raises(BindingError, match="made under plan v2, which governs rounds from 2 on"):
        verify_manifest_signature("f", early, key.key_id, sign_manifest(early, key, "f"), v2, None)


def test_next_version_checks(tmp_path, plan, site_keys, extra) -> None:
    root = write_root(tmp_path / "fed", plan)
    with pytest.raises(PlanError, match="changes nothing"):
        next_version(root, PlanChanges(from_round=2))
    with pytest.raises(PlanError, match="--remove-site site-x: no such site"):
        next_version(root, PlanChanges(from_round=2, remove_sites=("site-x",)))
    with pytest.raises(PlanError, match="already has a site 'site-a'"):
        next_version(root, PlanChanges(from_round=2, add_sites=(("site-a", extra["site-d"].public_key, None),)))
    with pytest.raises(PlanError, match="needs --new-coordinator-key"):
        next_version(root, PlanChanges(from_round=2, revoke=(site_keys["coordinator"].key_id,)))
    with pytest.raises(PlanError, match="--from-round 0"):
        next_version(root, PlanChanges(from_round=0, rounds=3))
    nxt = next_version(root, PlanChanges(from_round=2, settings=(("training.steps_per_round", 7),),
                                         remove_sites=("site-c",)))
    assert nxt.training.steps_per_round == 7 and [s.id for s in nxt.sites] == ["site-a", "site-b"]
    assert any(line.startswith("training.steps_per_round") and line.endswith("-> 7")
               for line in describe_changes(root, nxt))
    assert "-site site-c" in describe_changes(root, nxt)


def test_extend_chain_refuses_a_second_version_of_one_number(tmp_path, plan, site_keys) -> None:
    from fedseg.federation.plan_chain import extend_chain

    fed = tmp_path / "fed"
    v1 = write_root(fed, plan)
    v2 = write_update(fed, v1, site_keys["coordinator"], from_round=2, rounds=12)
    assert extend_chain(v2, [fed / update_filename(2)]).sha256 == v2.sha256  # the same file again: fine
    other = tmp_path / "elsewhere" / update_filename(2)
    other.parent.mkdir()
    write_plan_update(next_version(v1, PlanChanges(from_round=2, rounds=13)), site_keys["coordinator"], other)
    with pytest.raises(PlanError, match="a fork of the chain"):
        extend_chain(v2, [other])


def test_rounds_are_the_newest_versions_and_change_only_where_they_can(tmp_path, plan, site_keys) -> None:
    fed = tmp_path / "fed"
    root = write_root(fed, replace(plan, rounds=3))
    with pytest.raises(PlanError, match="--from-round 5: the federation's 3 round"):
        next_version(root, PlanChanges(from_round=5, rounds=6))  # round 4 would open under v1 and be beyond it
    with pytest.raises(PlanError, match="--rounds 2: fewer than round 3"):
        next_version(root, PlanChanges(from_round=4, rounds=2))
    chain = write_update(fed, root, site_keys["coordinator"], from_round=4, rounds=6)
    assert chain.in_force(1).rounds == 3 and chain.in_force(1).total_rounds == 6 == chain.total_rounds


def test_update_refuses_the_model_preprocessing_and_privacy_mode(tmp_path, plan) -> None:
    root = write_root(tmp_path / "fed", plan)
    for dotted, value, why in (("model.widths", [4, 8], "model section cannot change"),
                               ("preprocessing.spacing", [2.0, 2.0, 2.0], "preprocessing section cannot change"),
                               ("privacy.mode", "dp-sgd", "privacy mode cannot change")):
        with pytest.raises(PlanError, match=f"--set {dotted}: the {why}"):
            next_version(root, PlanChanges(from_round=2, settings=((dotted, value),)))
    nxt = next_version(root, PlanChanges(from_round=2, settings=(("privacy.mode", "off"), ("training.steps_per_round", 3))))
    assert nxt.privacy.mode.value == "off" and nxt.training.steps_per_round == 3

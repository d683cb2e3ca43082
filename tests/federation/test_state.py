"""Site state: trust on first use, then only round last+1 or the same file again."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.errors import StateError
from fedseg.federation.state import SiteState

FED, OTHER = "fed-1", "fed-2"
A, B = "a" * 64, "b" * 64


def test_first_global_is_trusted_and_recorded(tmp_path):
    state = SiteState(tmp_path / "state.json")
    assert state.last(FED) is None
    state.check_global(FED, 5, A)  # trust on first use, whatever the round
    state.accept_global(FED, 5, A)
    assert SiteState(tmp_path / "state.json").last(FED) == {"round": 5, "sha256": A}
    assert json.loads((tmp_path / "state.json").read_text()) == {FED: {"round": 5, "sha256": A}}


def test_next_round_and_same_file_again_are_accepted(tmp_path):
    state = SiteState(tmp_path / "state.json")
    state.accept_global(FED, 0, A)
    state.accept_global(FED, 0, A)  # replaying the same file is harmless
    state.accept_global(FED, 1, B)
    assert state.last(FED) == {"round": 1, "sha256": B}


def test_older_round_is_refused(tmp_path):
    state = SiteState(tmp_path / "state.json")
    state.accept_global(FED, 3, A)
    with pytest.raises(StateError, match="older than round 3.*rollback"):
        state.accept_global(FED, 2, B)
    assert state.last(FED) == {"round": 3, "sha256": A}


def test_jump_of_more_than_one_round_is_refused(tmp_path):
    state = SiteState(tmp_path / "state.json")
    state.accept_global(FED, 3, A)
    with pytest.raises(StateError, match="expected global round 4.*got round 5"):
        state.check_global(FED, 5, B)


def test_different_file_for_the_same_round_is_refused(tmp_path):
    state = SiteState(tmp_path / "state.json")
    state.accept_global(FED, 3, A)
    with pytest.raises(StateError, match="two different globals for one round"):
        state.accept_global(FED, 3, B)


def test_federations_are_independent(tmp_path):
    state = SiteState(tmp_path / "state.json")
    state.accept_global(FED, 7, A)
    state.accept_global(OTHER, 0, B)
    assert state.last(FED)["round"] == 7 and state.last(OTHER)["round"] == 0


@pytest.mark.parametrize("content", ["not json", "[]", '{"f": {"round": -1, "sha256": "' + A + '"}}',
                                     '{"f": {"round": 1, "sha256": "xyz"}}', '{"f": {"round": 1}}'])
def test_corrupt_state_file_is_an_error_not_a_reset(tmp_path, content):
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(StateError, match="state.json"):
        SiteState(tmp_path / "state.json").check_global("f", 0, A)


@pytest.mark.parametrize(("rnd", "digest"), [(-1, A), (True, A), (1, "A" * 64), (1, "ab")])
def test_bad_arguments(tmp_path, rnd, digest):
    with pytest.raises(StateError):
        SiteState(tmp_path / "state.json").accept_global(FED, rnd, digest)
    assert not (tmp_path / "state.json").exists()


@settings(max_examples=25, deadline=None)
@given(start=st.integers(0, 50), steps=st.lists(st.integers(-3, 3), max_size=6))
def test_only_plus_one_or_replay_moves_forward(tmp_path_factory, start, steps):
    """Property: the recorded round only changes by accepted +1 steps; replays keep it; all else is refused."""
    state = SiteState(tmp_path_factory.mktemp("s") / "state.json")
    current = start
    state.accept_global(FED, current, format(current, "064x"))
    for step in steps:
        target = current + step
        if target < 0:
            continue
        if step in (0, 1):
            state.accept_global(FED, target, format(target, "064x"))
            current = target
        else:
            with pytest.raises(StateError):
                state.accept_global(FED, target, format(target, "064x"))
        assert state.last(FED) == {"round": current, "sha256": format(current, "064x")}


def test_first_contact_refuses_a_global_a_revoked_coordinator_key_may_have_forged(tmp_path, plan, site_keys,
                                                                                    keydir) -> None:
    from fedseg.federation.keys import generate_keypair, load_public_key
    from tests._plan_chain import write_root, write_update

    fed = tmp_path / "fed"
    root = write_root(fed, plan)
    generate_keypair("coord-2", keydir)
    chain = write_update(fed, root, site_keys["coordinator"], from_round=6, revoke=(site_keys["coordinator"].key_id,),
                         coordinator_key=load_public_key(keydir / "coord-2.pub"))
    state = SiteState(tmp_path / "state.json")
    with pytest.raises(StateError, match="first global of round 4, older than round 5: coordinator key .* revoked"):
        state.accept_global(chain.federation_id, 4, A, plan=chain)
    with pytest.raises(StateError, match="older than round 5"):
        state.check_global(chain.federation_id, 2, A, plan=chain)
    state.check_global(chain.federation_id, 4, A, plan=root)  # no revocation: trust on first use
    state.accept_global(chain.federation_id, 5, A, plan=chain)
    state.accept_global(chain.federation_id, 6, B, plan=chain)  # no longer a first contact

"""The coordinator's server-optimizer state file: fresh starts, refusals, the rounds kept, escaped names."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedseg.errors import StateError
from fedseg.workflow.coordinator.server_state import _escape, open_state_writer, read_state, round_group

SLOTS = ("m", "v")


def _write(path: Path, round_: int, digest: str, tensors: dict[str, float], *, keep: int = -1,
           strategy: str = "fedadam") -> None:
    box: dict[str, str] = {}
    with open_state_writer(path, round_, keep_round=keep, global_sha256_of=box, strategy=strategy) as w:
        for name, value in tensors.items():
            w.put(name, {"m": np.full((2,), value), "v": np.full((2,), 2 * value)})
        box["digest"] = digest


def test_round_group_name() -> None:
    assert round_group(3) == "round-000003" and round_group(1234567) == "round-1234567"


def test_absent_file_or_no_slots_start_fresh(tmp_path: Path) -> None:
    with read_state(tmp_path / "none.h5", 1, global_sha256="a" * 64, strategy="fedadam", slots=SLOTS) as r:
        assert r.get("w") is None
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")  # never opened when the strategy keeps no state
    with read_state(bad, 1, global_sha256="a" * 64, strategy="fedavg", slots=()) as r:
        assert r.get("w") is None


def test_written_state_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "state.h5"
    _write(path, 1, "a" * 64, {"enc.weight": 0.5, "b": -1.0})
    with read_state(path, 1, global_sha256="a" * 64, strategy="fedadam", slots=SLOTS) as r:
        got = r.get("enc.weight")
        assert got is not None and set(got) == {"m", "v"}
        assert got["m"].dtype == np.float32
        np.testing.assert_array_equal(got["m"], [0.5, 0.5])
        np.testing.assert_array_equal(got["v"], [1.0, 1.0])
        with pytest.raises(StateError, match="lacks slot/tensor for 'other'"):
            r.get("other")
    with h5py.File(path, "r") as f:
        assert list(f) == ["round-000001"]
        assert f["round-000001"].attrs["global_sha256"] == "a" * 64 and f["round-000001"].attrs["strategy"] == "fedadam"


def test_other_digest_is_refused_other_strategy_or_round_starts_fresh(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.h5"
    _write(path, 1, "a" * 64, {"w": 1.0})
    with pytest.raises(StateError, match=r"round 1 belongs to global aaaaaaaaaaaa, not the current bbbbbbbbbbbb"):
        with read_state(path, 1, global_sha256="b" * 64, strategy="fedadam", slots=SLOTS):
            pass
    with caplog.at_level(logging.WARNING):
        with read_state(path, 1, global_sha256="a" * 64, strategy="fedyogi", slots=SLOTS) as r:
            assert r.get("w") is None
        with read_state(path, 2, global_sha256="a" * 64, strategy="fedadam", slots=SLOTS) as r:
            assert r.get("w") is None
    assert "is for fedadam, not fedyogi" in caplog.text and "no state for round 2" in caplog.text


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(StateError, match="server state file cannot be read"):
        with read_state(path, 1, global_sha256="a" * 64, strategy="fedadam", slots=SLOTS):
            pass


def test_writer_keeps_only_the_previous_round(tmp_path: Path) -> None:
    path = tmp_path / "state.h5"
    _write(path, 0, "0" * 64, {"w": 0.0})
    _write(path, 1, "1" * 64, {"w": 1.0}, keep=0)
    _write(path, 2, "2" * 64, {"w": 2.0}, keep=1)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["round-000001", "round-000002"]
        assert f["round-000001"].attrs["global_sha256"] == "1" * 64  # copied with its attributes
    with read_state(path, 1, global_sha256="1" * 64, strategy="fedadam", slots=SLOTS) as r:  # a rerun of round 2
        got = r.get("w")
        assert got is not None
        np.testing.assert_array_equal(got["v"], [2.0, 2.0])


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.h5"
    _write(path, 1, "1" * 64, {"w": 1.0})
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with open_state_writer(path, 2, keep_round=1, global_sha256_of={}, strategy="fedadam") as w:
            w.put("w", {"m": np.zeros(2)})
            raise RuntimeError("crash while combining")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.h5"]


def test_names_with_slashes_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "state.h5"
    _write(path, 1, "a" * 64, {"enc/conv": 1.0, "enc%2Fconv": 2.0, "100%": 3.0})
    with h5py.File(path, "r") as f:
        assert sorted(f["round-000001/m"]) == ["100%25", "enc%252Fconv", "enc%2Fconv"]  # no sub-groups
    with read_state(path, 1, global_sha256="a" * 64, strategy="fedadam", slots=SLOTS) as r:
        for name, value in {"enc/conv": 1.0, "enc%2Fconv": 2.0, "100%": 3.0}.items():
            got = r.get(name)
            assert got is not None and got["m"][0] == value


@given(st.text(alphabet="ab/%2F", max_size=8), st.text(alphabet="ab/%2F", max_size=8))
def test_escape_is_injective_and_slash_free(a: str, b: str) -> None:
    assert "/" not in _escape(a)
    assert (_escape(a) == _escape(b)) == (a == b)

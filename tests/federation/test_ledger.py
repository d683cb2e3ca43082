"""The coordinator's hash-chained ledger: appends, helpers, and detection of edited or truncated history."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fedseg.errors import StateError
from fedseg.federation.ledger import GENESIS, GLOBAL_WRITTEN, UPDATE_ACCEPTED, UPDATE_REJECTED, Ledger
from fedseg.hashing import sha256_bytes


def clock():
    return datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def filled(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl", clock=clock)
    ledger.append(GLOBAL_WRITTEN, round=0, sha256="0a" * 32, path="global-r0000.fedseg")
    ledger.append(UPDATE_ACCEPTED, round=1, site="site-a", sha256="1a" * 32)
    ledger.append(UPDATE_REJECTED, round=1, site="site-b", path="b.fedseg", reason="bad signature")
    ledger.append(UPDATE_ACCEPTED, round=1, site="site-c", sha256="1c" * 32)
    ledger.append(GLOBAL_WRITTEN, round=1, sha256="0b" * 32, path="global-r0001.fedseg")
    return ledger


def lines(ledger: Ledger) -> list[bytes]:
    return ledger.path.read_bytes().splitlines(keepends=True)


def test_entries_are_chained(tmp_path):
    ledger = filled(tmp_path)
    entries = ledger.entries()
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    raw = lines(ledger)
    for i in range(1, len(raw)):
        assert entries[i]["prev"] == sha256_bytes(raw[i - 1].rstrip(b"\n"))
    assert entries[1] == {"seq": 1, "prev": entries[1]["prev"], "time": "2024-05-01T12:00:00.000000Z",
                          "event": UPDATE_ACCEPTED, "round": 1, "site": "site-a", "sha256": "1a" * 32}
    head = json.loads(ledger.head_path.read_text())
    assert head == {"seq": 4, "sha256": sha256_bytes(raw[-1].rstrip(b"\n"))}
    assert ledger.verify() == 5


def test_empty_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    assert ledger.verify() == 0 and ledger.entries() == [] and ledger.last_global() is None
    assert ledger.accepted_updates(1) == []


def test_helpers(tmp_path):
    ledger = filled(tmp_path)
    assert [e["site"] for e in ledger.accepted_updates(1)] == ["site-a", "site-c"]
    assert ledger.accepted_updates(2) == []
    assert ledger.last_global() == {"round": 1, "sha256": "0b" * 32, "path": "global-r0001.fedseg"}
    ledger.check_update_allowed(1, "site-b")  # only rejected so far: allowed
    ledger.check_update_allowed(2, "site-a")
    with pytest.raises(StateError, match="site 'site-a' already has an accepted update for round 1"):
        ledger.check_update_allowed(1, "site-a")


def test_edited_line_is_detected(tmp_path):
    ledger = filled(tmp_path)
    raw = lines(ledger)
    raw[1] = raw[1].replace(b'"site":"site-a"', b'"site":"site-x"')  # still canonical JSON
    ledger.path.write_bytes(b"".join(raw))
    with pytest.raises(StateError, match="line 3: its prev hash does not match"):
        ledger.verify()


def test_edited_last_line_is_detected_by_the_head(tmp_path):
    ledger = filled(tmp_path)
    raw = lines(ledger)
    raw[-1] = raw[-1].replace(b'"round":1', b'"round":2')
    ledger.path.write_bytes(b"".join(raw))
    with pytest.raises(StateError, match="does not match the head hash"):
        ledger.verify()


def test_non_canonical_edit_is_detected(tmp_path):
    ledger = filled(tmp_path)
    raw = lines(ledger)
    raw[2] = raw[2].replace(b'{"event"', b'{ "event"')
    ledger.path.write_bytes(b"".join(raw))
    with pytest.raises(StateError, match="line 3 is not a canonical ledger entry"):
        ledger.entries()


def test_removed_line_is_detected(tmp_path):
    ledger = filled(tmp_path)
    raw = lines(ledger)
    ledger.path.write_bytes(b"".join(raw[:2] + raw[3:]))
    with pytest.raises(StateError, match="line 3: expected seq 2, found 3"):
        ledger.verify()


def test_reordered_lines_are_detected(tmp_path):
    ledger = filled(tmp_path)
    raw = lines(ledger)
    raw[1], raw[2] = raw[2], raw[1]
    ledger.path.write_bytes(b"".join(raw))
    with pytest.raises(StateError, match="expected seq 1"):
        ledger.verify()


@pytest.mark.parametrize("keep", [0, 3, 4])
def test_truncated_tail_is_detected(tmp_path, keep):
    ledger = filled(tmp_path)
    ledger.path.write_bytes(b"".join(lines(ledger)[:keep]))
    with pytest.raises(StateError, match="truncated"):
        ledger.verify()


def test_partial_last_line_is_detected(tmp_path):
    ledger = filled(tmp_path)
    ledger.path.write_bytes(ledger.path.read_bytes()[:-5])
    with pytest.raises(StateError, match="last line is incomplete"):
        ledger.verify()


def test_missing_head_is_detected(tmp_path):
    ledger = filled(tmp_path)
    ledger.head_path.unlink()
    with pytest.raises(StateError, match="head is missing"):
        ledger.verify()


def test_lines_appended_outside_fedseg_are_detected(tmp_path):
    ledger = filled(tmp_path)
    head = ledger.head_path.read_bytes()
    ledger.append(UPDATE_ACCEPTED, round=2, site="site-a", sha256="2a" * 32)
    ledger.append(UPDATE_ACCEPTED, round=2, site="site-b", sha256="2b" * 32)
    ledger.head_path.write_bytes(head)
    with pytest.raises(StateError, match="appended outside fedseg"):
        ledger.verify()


def test_append_interrupted_before_the_head_is_accepted_and_repaired(tmp_path):
    ledger = filled(tmp_path)
    head = ledger.head_path.read_bytes()
    ledger.append(UPDATE_ACCEPTED, round=2, site="site-a", sha256="2a" * 32)
    ledger.head_path.write_bytes(head)  # as if the process died between the ledger and head renames
    assert ledger.verify() == 6
    ledger.append(UPDATE_ACCEPTED, round=2, site="site-b", sha256="2b" * 32)
    assert json.loads(ledger.head_path.read_text())["seq"] == 6
    assert ledger.verify() == 7


def test_append_refuses_to_extend_a_broken_ledger(tmp_path):
    ledger = filled(tmp_path)
    ledger.path.write_bytes(b"".join(lines(ledger)[1:]))
    before = ledger.path.read_bytes()
    with pytest.raises(StateError):
        ledger.append(UPDATE_ACCEPTED, round=2, site="site-a", sha256="2a" * 32)
    assert ledger.path.read_bytes() == before


def test_interrupted_append_leaves_the_old_ledger(tmp_path, monkeypatch):
    import os

    ledger = filled(tmp_path)
    before = ledger.path.read_bytes()

    def boom(*args):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        ledger.append(UPDATE_ACCEPTED, round=2, site="site-a", sha256="2a" * 32)
    monkeypatch.undo()
    assert ledger.path.read_bytes() == before and ledger.verify() == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl", "ledger.jsonl.head"]


@pytest.mark.parametrize(("event", "fields", "match"), [
    ("x", {"seq": 3}, "reserved"),
    ("x", {"prev": "0"}, "reserved"),
    ("", {}, "event name"),
    ("x", {"value": float("nan")}, "plain JSON"),
    ("x", {"value": object()}, "plain JSON"),
])
def test_bad_appends(tmp_path, event, fields, match):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(StateError, match=match):
        ledger.append(event, **fields)
    assert not ledger.path.exists()

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

"""The envelope alone: magic, header length, canonical header; no signature is checked here."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fedseg.errors import ArtifactError
from fedseg.federation.envelope import (
    MAGIC,
    MAX_HEADER_BYTES,
    open_envelope,
    read_envelope_unverified,
    read_manifest_unverified,
    stat_size,
    write_envelope,
)
from fedseg.hashing import canonical_json


def test_write_then_open_gives_the_parts_back(tmp_path: Path) -> None:
    path = tmp_path / "a.fedseg"
    write_envelope(path, {"round": 1, "kind": "update"}, "k" * 16, "c2ln", b"payload!")
    data = path.read_bytes()
    header = canonical_json({"manifest": {"round": 1, "kind": "update"}, "key_id": "k" * 16, "signature": "c2ln"})
    assert data == MAGIC + struct.pack("<I", len(header)) + header + b"payload!"
    env = read_envelope_unverified(path)
    assert (env.key_id, env.signature, env.file_size) == ("k" * 16, "c2ln", len(data))
    assert data[env.payload_offset:env.payload_offset + env.payload_length] == b"payload!"
    assert read_manifest_unverified(path) == {"round": 1, "kind": "update"}
    with open(path, "rb") as fh:
        assert open_envelope(path, fh, stat_size(path), len(data)) == env


def test_write_refuses_an_oversized_header_or_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="header is"):
        write_envelope(tmp_path / "h.fedseg", {"x": "y" * MAX_HEADER_BYTES}, "k", "s", b"")
    with pytest.raises(ArtifactError, match="limit is 100"):
        write_envelope(tmp_path / "f.fedseg", {}, "k", "s", b"x" * 100, max_bytes=100)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"FEDS", "truncated inside the magic"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 8, "bare HDF5"),
    (b"PK\x03\x04" + b"\0" * 12, "pickle/torch"),
    (b"FEDSEG\x00\x02" + b"\0" * 8, "format version 2"),
    (MAGIC + b"\x00", "header length field"),
    (MAGIC + struct.pack("<I", 0), "header length 0"),
    (MAGIC + struct.pack("<I", 50) + b"{}", "truncated inside the header"),
    (MAGIC + struct.pack("<I", 2) + b"[]", "exactly manifest, key_id, signature"),
    (MAGIC + struct.pack("<I", 3) + b"{ }", "not canonical"),
    (MAGIC + struct.pack("<I", 2) + b"{x", "not valid JSON"),
])
def test_open_refuses(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "bad.fedseg"
    path.write_bytes(data)
    with pytest.raises(ArtifactError, match=match) as info:
        read_envelope_unverified(path)
    assert str(path) in str(info.value)


def test_stat_size_names_a_missing_file_or_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        stat_size(tmp_path / "missing.fedseg")
    with pytest.raises(ArtifactError, match="regular file"):
        stat_size(tmp_path)

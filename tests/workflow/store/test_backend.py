"""The same round trip on all three backends, each against a real server on localhost."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.errors import StoreError
from fedseg.workflow.store import Retry, open_store, parse_location, redact
from fedseg.workflow.store.backend import Store


def test_round_trip(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    assert store.list("rounds/r0001/updates") == [] and not store.exists("rounds/r0000/global.fedseg")
    src = tmp_path / "g.fedseg"
    src.write_bytes(b"global bytes" * 1000)
    assert store.create("rounds/r0000/global.fedseg", src)
    assert not store.create("rounds/r0000/global.fedseg", b"other")  # publish once: the first one stays
    store.put("rounds/r0001/updates/site-a.fedseg", b"v1")
    store.put("rounds/r0001/updates/site-a.fedseg", b"v2")  # an atomic replace
    assert store.list("rounds/r0001/updates") == ["site-a.fedseg"]  # no temporary names left behind
    assert store.list("rounds/r0000") == ["global.fedseg"]
    assert store.get("rounds/r0000/global.fedseg", tmp_path / "back.fedseg")
    assert (tmp_path / "back.fedseg").read_bytes() == src.read_bytes()
    assert store.get("rounds/r0001/updates/site-a.fedseg", tmp_path / "u") and (tmp_path / "u").read_bytes() == b"v2"
    assert not store.get("rounds/r0009/global.fedseg", tmp_path / "none") and not (tmp_path / "none").exists()
    with pytest.raises(StoreError, match="at most 10"):
        store.get("rounds/r0000/global.fedseg", tmp_path / "big", max_bytes=10)


class _Flaky:
    """A filesystem whose first calls fail like a dropped connection."""

    def __init__(self, fails: int) -> None:
        self.fails = fails

    def exists(self, path: str) -> bool:
        if self.fails:
            self.fails -= 1
            raise ConnectionResetError("connection reset by peer at sftp://alice:hunter2@host/x")
        return True


def test_network_errors_are_retried_with_backoff_and_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    store = Store(parse_location("s3://bucket/p"), _Flaky(2), retry=Retry(tries=4, first=0.5), sleep=waits.append)
    assert store.exists("a")
    assert waits == [0.5, 1.0]
    assert "retry 1 of 3" in caplog.text and "hunter2" not in caplog.text and "alice:***@" in caplog.text
    store = Store(parse_location("s3://bucket/p"), _Flaky(9), retry=Retry(tries=3), sleep=waits.append)
    with pytest.raises(StoreError, match="after 3 tries") as info:
        store.exists("a")
    assert "hunter2" not in str(info.value)


def test_locations_and_credentials() -> None:
    with pytest.raises(StoreError, match="password in the store URL is refused") as info:
        parse_location("sftp://bob:secret@files.example.org/fed")
    assert "secret" not in str(info.value)
    loc = parse_location("sftp://bob@files.example.org:2222/fed/")
    assert (loc.host, loc.port, loc.user, loc.root) == ("files.example.org", 2222, "bob", "/fed")
    assert parse_location("s3://bucket/prefix/").root == "bucket/prefix"
    with pytest.raises(StoreError, match="unknown scheme"):
        parse_location("ftp://host/x")
    assert redact("see https://u:p@h/x and s3://k:s@b") == "see https://u:***@h/x and s3://k:***@b"


def test_sftp_refuses_an_unknown_host_key(store_servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(StoreError, match="cannot connect"):
        open_store(f"sftp://127.0.0.1:{store_servers['sftp_port']}/x", retry=Retry(tries=1))

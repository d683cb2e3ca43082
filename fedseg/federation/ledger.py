"""The coordinator's append-only, hash-chained ledger of accepted/rejected updates and written globals.

One JSON object per line (canonical JSON, then ``\\n``)::

    {"event": ..., "prev": <sha256 hex of the previous line, 64 zeros first>, "seq": n, "time": ..., ...fields}

``prev`` is the SHA-256 of the previous line's bytes without its newline, so editing, reordering or
removing any line breaks the chain at the next line. The last line has no successor, so a head file
``<ledger>.head`` (``{"seq", "sha256"}`` of the last line) is rewritten after every append; a ledger
shorter than its head (a truncated tail) or whose last line was edited no longer matches it.

Crash safety: each append rewrites the whole ledger atomically (temp file, fsync, rename; via
:mod:`fedseg.fsutil`), so a partial line can never appear; a ledger is small (a few hundred bytes per
update), so the O(size) rewrite is cheap. The head is written after the ledger: a crash between the two
leaves the ledger exactly one line ahead of its head, which ``verify`` accepts as an interrupted append
and the next ``append`` repairs. Anything else that disagrees is a StateError.

The chain detects edits made without rewriting every later line and the head; it is not a defence against
someone who can rewrite both files at will (keep a copy of the head elsewhere for that).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedseg.errors import StateError
from fedseg.fsutil import atomic_write_bytes, atomic_write_json
from fedseg.hashing import canonical_json

__all__ = ["GENESIS", "GLOBAL_WRITTEN", "PLAN_ACCEPTED", "UPDATE_ACCEPTED", "UPDATE_REJECTED", "Ledger"]

log = logging.getLogger(__name__)

GENESIS = "0" * 64
UPDATE_ACCEPTED = "update-accepted"  # fields: round, site, sha256 (+ anything useful: examples, path)
UPDATE_REJECTED = "update-rejected"  # fields: round, site (when known), path, reason
GLOBAL_WRITTEN = "global-written"  # fields: round, sha256, path
PLAN_ACCEPTED = "plan-accepted"  # fields: version, sha256 (the newest plan version of the chain, when it changes)
_RESERVED = ("seq", "prev", "time", "event")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


class Ledger:
    """An append-only hash-chained JSON-lines ledger at ``path`` with its head file beside it."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._clock = clock

    # ------------------------------------------------------------------ reading and verification

    def _read(self) -> tuple[bytes, list[dict[str, Any]], list[bytes]]:
        """Return the raw bytes, the verified entries and their lines; StateError when the history is broken."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the ledger ({exc.strerror})") from None
        if raw and not raw.endswith(b"\n"):
            raise StateError(f"{self.path}: the last line is incomplete; the ledger was truncated or edited")
        lines = raw.split(b"\n")[:-1] if raw else []
        entries: list[dict[str, Any]] = []
        prev = GENESIS
        for seq, line in enumerate(lines):
            where = f"{self.path}: line {seq + 1}"
            try:
                entry = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise StateError(f"{where} is not valid JSON; the ledger was edited") from None
            if not isinstance(entry, dict) or canonical_json(entry) != line:
                raise StateError(f"{where} is not a canonical ledger entry; the ledger was edited")
            if entry.get("seq") != seq:
                raise StateError(f"{where}: expected seq {seq}, found {entry.get('seq')!r}; lines were removed "
                                 "or reordered")
            if entry.get("prev") != prev:
                raise StateError(f"{where}: its prev hash does not match line {seq}; an earlier line was edited, "
                                 "removed or reordered")
            if not isinstance(entry.get("event"), str):
                raise StateError(f"{where}: entry has no event name")
            entries.append(entry)
            prev = _line_hash(line)
        self._check_head(lines)
        return raw, entries, lines

    def _read_head(self) -> dict[str, Any] | None:
        try:
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise StateError(f"{self.head_path}: the ledger head is unreadable or not JSON") from None
        if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or not isinstance(head.get("sha256"), str):
            raise StateError(f"{self.head_path}: expected {{seq, sha256}}, found {head!r}")
        return head

    def _check_head(self, lines: list[bytes]) -> None:
        head = self._read_head()
        count = len(lines)
        if head is None:
            if count > 1:
                raise StateError(f"{self.head_path}: the ledger head is missing but the ledger has {count} lines")
            return  # empty ledger, or a crash right after the very first append
        seq = head["seq"]
        if seq >= count:
            raise StateError(f"{self.path}: the head records {seq + 1} line(s) but the ledger has {count}; "
                             "its tail was truncated")
        if seq < count - 2:
            raise StateError(f"{self.path}: the ledger has {count} lines but its head records {seq + 1}; "
                             "lines were appended outside fedseg")
        if _line_hash(lines[seq]) != head["sha256"]:
            raise StateError(f"{self.path}: line {seq + 1} does not match the head hash; the ledger was edited")
        if seq == count - 2:
            log.warning("%s: the last append was interrupted before its head was written; accepting it", self.path)

    def verify(self) -> int:
        """Check the whole chain and the head; return the number of entries. StateError when broken."""
        return len(self._read()[1])

    def entries(self) -> list[dict[str, Any]]:
        """Return every entry, oldest first, after verifying the chain."""
        return self._read()[1]

    # ---------------------------------------------------------------------------------- appending

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Verify the ledger, add one entry and return it. ``fields`` must be plain JSON data."""
        if not event or not isinstance(event, str):
            raise StateError(f"{self.path}: an entry needs an event name, got {event!r}")
        clash = sorted(set(fields) & set(_RESERVED))
        if clash:
            raise StateError(f"{self.path}: field(s) {clash} are reserved ledger keys")
        raw, entries, lines = self._read()
        entry = {
            **fields,
            "seq": len(entries),
            "prev": _line_hash(lines[-1]) if lines else GENESIS,
            "time": self._clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event": event,
        }
        try:
            line = canonical_json(entry)
        except (TypeError, ValueError) as exc:
            raise StateError(f"{self.path}: ledger fields must be plain JSON data ({exc})") from None

        def write(fh: Any) -> None:
            fh.write(raw)
            fh.write(line + b"\n")

        atomic_write_bytes(self.path, write)
        atomic_write_json(self.head_path, {"seq": entry["seq"], "sha256": _line_hash(line)})
        return entry

    # ------------------------------------------------------------------- coordinator helpers

    def accepted_updates(self, round: int) -> list[dict[str, Any]]:
        """Return the ``update-accepted`` entries of ``round``."""
        return [e for e in self.entries() if e["event"] == UPDATE_ACCEPTED and e.get("round") == round]

    def check_update_allowed(self, round: int, site: str) -> None:
        """Raise StateError when ``site`` already has an accepted update for ``round`` (one per site)."""
        for entry in self.accepted_updates(round):
            if entry.get("site") == site:
                raise StateError(
                    f"site {site!r} already has an accepted update for round {round} "
                    f"(payload {str(entry.get('sha256'))[:12]}, ledger seq {entry['seq']}); one update per site"
                )

    def last_global(self) -> dict[str, Any] | None:
        """Return ``{"round", "sha256", "path"}`` of the last ``global-written`` entry, or None."""
        for entry in reversed(self.entries()):
            if entry["event"] == GLOBAL_WRITTEN:
                return {"round": entry.get("round"), "sha256": entry.get("sha256"), "path": entry.get("path")}
        return None

    def accepted_plan(self) -> dict[str, Any] | None:
        """Return the last ``plan-accepted`` entry (``version``, ``sha256``), or None (version 1 so far)."""
        return next((e for e in reversed(self.entries()) if e["event"] == PLAN_ACCEPTED), None)

    def trust_plan(self, plan: Any, *, record: bool = True) -> None:
        """Refuse ``plan``'s chain unless it holds the plan version last accepted; record a newer one.

        The first round under a chain records its newest version (``plan-accepted``); from then on an older
        chain (rollback) or one with another version of that number (a fork) raises StateError.
        """
        from fedseg.federation.plan_chain import check_trusted

        last = self.accepted_plan()
        newest = plan.versions[-1]
        if last is not None:
            check_trusted(plan, int(last["version"]), str(last["sha256"]), str(self.path))
            if int(last["version"]) == newest.version:
                return
        if record and (last is not None or newest.version > 1):
            self.append(PLAN_ACCEPTED, version=newest.version, sha256=newest.sha256)

"""The ``[chain]`` table of a plan version: its place in the signed plan chain (TUF-style root rotation).

Plan version 1 is the root, distributed out of band, and has no ``[chain]`` table (so every plan made
before chains existed is version 1 and keeps its hash). A later version states::

    [chain]
    version = 3                  # the previous version + 1
    previous_sha256 = "..."      # the hash of the previous version (its canonical JSON form)
    from_round = 3               # the first round whose updates and global it governs

    [[chain.revoked]]            # cumulative: every key revoked so far in the chain
    key_id = "ed25519:..."
    member = "site-b"
    from_round = 3               # artifacts of this round on, signed by the key, are refused

and is signed by the coordinator key of the previous version (see :mod:`fedseg.federation.plan_chain`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedseg.errors import PlanError

__all__ = ["ChainLink", "Revocation", "link_from_mapping"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"ed25519:[0-9a-f]{32}")


def _count(value: Any, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= 100_000:
        raise PlanError(f"[chain] {name} must be an integer in {minimum}..100000, got {value!r}")
    return value


@dataclass(frozen=True)
class Revocation:
    """A member key refused for every artifact of ``from_round`` on (a lost laptop, a leaked key)."""

    key_id: str
    member: str
    from_round: int

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "member": self.member, "from_round": self.from_round}


@dataclass(frozen=True)
class ChainLink:
    """Where a plan version (2 and later) sits in its chain."""

    version: int
    previous_sha256: str
    from_round: int
    revoked: tuple[Revocation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version, "previous_sha256": self.previous_sha256,
                                "from_round": self.from_round}
        if self.revoked:
            data["revoked"] = [r.to_dict() for r in self.revoked]
        return data

    def revocation(self, key_id: str) -> Revocation | None:
        """Return the revocation of ``key_id``, or None."""
        return next((r for r in self.revoked if r.key_id == key_id), None)


def link_from_mapping(raw: Any) -> ChainLink:
    """Parse the ``[chain]`` table strictly; PlanError names the key that is off."""
    if not isinstance(raw, Mapping):
        raise PlanError("[chain] must be a table")
    unknown = sorted(set(raw) - {"version", "previous_sha256", "from_round", "revoked"})
    if unknown:
        raise PlanError(f"[chain]: unknown key(s) {', '.join(unknown)}")
    version = _count(raw.get("version"), "version", 2)
    previous = raw.get("previous_sha256")
    if not isinstance(previous, str) or not _HEX64.fullmatch(previous):
        raise PlanError(f"[chain] previous_sha256 must be 64 lowercase hex digits, got {previous!r}")
    revoked_raw = raw.get("revoked", [])
    if not isinstance(revoked_raw, list):
        raise PlanError("[[chain.revoked]] must be an array of tables")
    revoked = []
    for entry in revoked_raw:
        if not isinstance(entry, Mapping) or set(entry) != {"key_id", "member", "from_round"}:
            raise PlanError(f"[[chain.revoked]] entries need exactly key_id, member, from_round; got {entry!r}")
        if not isinstance(entry["key_id"], str) or not _KEY_ID.fullmatch(entry["key_id"]):
            raise PlanError(f"[[chain.revoked]] key_id must look like ed25519:<32 hex digits>, got {entry['key_id']!r}")
        if not isinstance(entry["member"], str):
            raise PlanError(f"[[chain.revoked]] member must be a string, got {entry['member']!r}")
        revoked.append(Revocation(entry["key_id"], entry["member"], _count(entry["from_round"], "revoked from_round", 1)))
    if len({r.key_id for r in revoked}) != len(revoked):
        raise PlanError("[[chain.revoked]] names one key twice")
    return ChainLink(version, previous, _count(raw.get("from_round"), "from_round", 1), tuple(revoked))

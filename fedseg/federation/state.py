"""A site's rollback and replay protection: the last global round it accepted, per federation (DESIGN §4.5).

The state file is JSON, ``{federation_id: {"round": int, "sha256": str[, "plan_version": int,
"plan_sha256": str]}}``, rewritten atomically on every acceptance. The plan fields remember the newest
plan version the site has accepted (:mod:`fedseg.federation.plan_chain`): a chain that does not hold it
unchanged (an older plan version, a fork) is refused from then on. A site accepts global round ``last + 1``, or the very same file again (same round and payload
digest, e.g. re-running a command). With no record yet it trusts the first global it sees (trust on first
use); the signature and plan binding checks in :mod:`fedseg.federation.artifact` still apply to it, and
it is refused when older than the round before the newest revocation of a coordinator key (which may
have signed it).
Refused: an older round (rollback), a jump of more than one round (a skipped global), and a different
file for the round already accepted (equivocation by the coordinator key).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fedseg.errors import StateError
from fedseg.fsutil import atomic_write_json

__all__ = ["SiteState", "STATE_DIR", "default_state_path"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


_KEYS = {"round", "sha256"}
_PLAN_KEYS = {"plan_version", "plan_sha256"}


def _check_record(fid: Any, record: Any, where: str) -> None:
    if (not isinstance(fid, str) or not isinstance(record, dict)
            or set(record) not in (_KEYS, _KEYS | _PLAN_KEYS)):
        raise StateError(f"{where}: expected {{federation_id: {{round, sha256[, plan_version, plan_sha256]}}}}, "
                         f"found entry {fid!r}")
    if _PLAN_KEYS <= set(record):
        version, plan_sha = record["plan_version"], record["plan_sha256"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StateError(f"{where}: federation {fid}: plan_version must be an integer >= 1, found {version!r}")
        if not isinstance(plan_sha, str) or not _HEX64.fullmatch(plan_sha):
            raise StateError(f"{where}: federation {fid}: plan_sha256 must be 64 hex digits, found {plan_sha!r}")
    rnd, digest = record["round"], record["sha256"]
    if not isinstance(rnd, int) or isinstance(rnd, bool) or rnd < 0:
        raise StateError(f"{where}: federation {fid}: round must be an integer >= 0, found {rnd!r}")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise StateError(f"{where}: federation {fid}: sha256 must be 64 hex digits, found {digest!r}")


STATE_DIR = ".fedseg"


def default_state_path(data_dir: Path, federation_id: str) -> Path:
    """Return the site state of ``federation_id`` kept with the site's data: ``DATA/.fedseg/state-<id>.json``.

    The state belongs to the site and the federation, not to an output folder: every command of the site
    that accepts a global uses this file whatever its ``--out``, so rollback protection cannot be sidestepped
    by writing elsewhere; a new federation on the same data (another id) has a state of its own.
    """
    return Path(data_dir) / STATE_DIR / f"state-{federation_id}.json"


def _check_first_contact(plan: Any, round_: int) -> None:
    """Refuse a first global older than the round before the newest revocation of a coordinator key.

    The revoked key still signs the rounds before its revocation; a site that trusts on first use could
    be handed an old global forged with it, so it joins no earlier than the round the revocation allows.
    """
    tip = plan.versions[-1]
    coordinator = {v.coordinator.id for v in plan.versions}
    revoked = [r for r in (tip.link.revoked if tip.link is not None else ()) if r.member in coordinator]
    if not revoked:
        return
    newest = max(revoked, key=lambda r: r.from_round)
    if round_ < newest.from_round - 1:
        raise StateError(f"federation {plan.federation_id}: a first global of round {round_}, older than round "
                         f"{newest.from_round - 1}: coordinator key {newest.key_id} is revoked from round "
                         f"{newest.from_round} (plan v{tip.version}) and may have signed it; wait for a newer global")


class SiteState:
    """The last accepted global round per federation, kept in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the site state ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(f"{self.path}: the site state is not valid JSON ({exc}); refusing to guess") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: expected a JSON object of federations, found {type(data).__name__}")
        for fid, record in data.items():
            _check_record(fid, record, str(self.path))
        return data

    def last(self, federation_id: str) -> dict[str, Any] | None:
        """Return ``{"round", "sha256"}`` of the last global accepted for the federation, or None."""
        record = self._load().get(federation_id)
        return dict(record) if record is not None else None

    def check_global(self, federation_id: str, round: int, sha256: str, *, plan: Any = None) -> None:
        """Raise StateError unless global ``round`` with payload digest ``sha256`` may be accepted now.

        With ``plan``, a first contact is refused for a global older than a coordinator key revocation allows.
        """
        last = self.last(federation_id)
        if last is None:
            if plan is not None:
                _check_first_contact(plan, round)
            return
        prev_round, prev_sha = last["round"], last["sha256"]
        if round == prev_round:
            if sha256 != prev_sha:
                raise StateError(
                    f"federation {federation_id}: round {round} was already accepted with payload "
                    f"{prev_sha[:12]}, this file has {sha256[:12]}; two different globals for one round"
                )
            return
        if round < prev_round:
            raise StateError(
                f"federation {federation_id}: global round {round} is older than round {prev_round} already "
                "accepted (rollback refused)"
            )
        if round > prev_round + 1:
            raise StateError(
                f"federation {federation_id}: expected global round {prev_round + 1} (or {prev_round} again), "
                f"got round {round}; a round was skipped"
            )

    def check_plan(self, plan: Any) -> None:
        """Raise StateError unless ``plan``'s chain holds the plan version this site accepted before."""
        from fedseg.federation.plan_chain import check_trusted

        last = self.last(plan.federation_id)
        if last is not None and "plan_version" in last:
            check_trusted(plan, last["plan_version"], last["plan_sha256"], str(self.path))

    def accept_global(self, federation_id: str, round: int, sha256: str, *, plan: Any = None) -> None:
        """Check the global (and ``plan``'s chain), then record it as the last accepted one (atomically).

        With ``plan``, the newest version of its chain is remembered as the site's trusted plan version.
        """
        if not isinstance(round, int) or isinstance(round, bool) or round < 0:
            raise StateError(f"federation {federation_id}: round must be an integer >= 0, got {round!r}")
        if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
            raise StateError(f"federation {federation_id}: sha256 must be 64 hex digits, got {sha256!r}")
        self.check_global(federation_id, round, sha256, plan=plan)
        data = self._load()
        record = {**data.get(federation_id, {}), "round": round, "sha256": sha256}
        if plan is not None:
            self.check_plan(plan)
            newest = plan.versions[-1]
            if newest.version > record.get("plan_version", 1):  # a version-1 federation keeps the old record
                record.update(plan_version=newest.version, plan_sha256=newest.sha256)
        data[federation_id] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, data)

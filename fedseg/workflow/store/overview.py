"""`fedseg status`: rounds x sites as the store shows them, and each member's last error.

Every published global is downloaded and verified (:func:`read_global`); the sites it names as
contributors (signed) are "accepted". Rejections, their reasons and late updates come from the round's
``report.json``, which is unsigned and shown as the store has it. A cell is one of ``accepted``,
``rejected: <rule>``, ``late``, ``answered`` (round still open), ``missing`` (round closed without it)
or empty (not answered yet).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.federation.plan import Plan
from fedseg.workflow.site.received import read_global
from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.layout import global_key, parse_update_name, report_key, updates_folder
from fedseg.workflow.store.location import redact

__all__ = ["RoundRow", "StoreOverview", "store_overview"]

MAX_JSON_BYTES = 4 * 2**20


@dataclass
class RoundRow:
    round: int
    published: bool
    sha256: str | None = None
    sites: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the global is on the store but does not verify

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "published": self.published, "sha256": self.sha256, "sites": self.sites,
                "reasons": self.reasons, "error": self.error}


@dataclass
class StoreOverview:
    store: str
    sites: list[str]
    rounds: list[RoundRow]
    errors: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "sites": self.sites, "rounds": [r.to_dict() for r in self.rounds],
                "errors": self.errors}


def _json(store: Store, key: str, tmp: Path) -> dict[str, Any] | None:
    dest = tmp / "file.json"
    if not store.get(key, dest, max_bytes=MAX_JSON_BYTES):
        return None
    try:
        body = json.loads(dest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _cell(site: str, answered: set[str], contributors: set[str], report: dict[str, Any] | None,
          closed: bool) -> tuple[str, str | None]:
    if site in contributors:
        return "accepted", None
    if report is not None:
        if site in report.get("late", []):
            return "late", None
        for entry in report.get("updates", []):
            if isinstance(entry, dict) and entry.get("site") == site and not entry.get("accepted"):
                return f"rejected: {entry.get('rule')}", str(entry.get("reason"))
    if site in answered:
        return ("late" if closed else "answered"), None
    return ("missing" if closed else ""), None


def store_overview(plan: Plan, store: Store) -> StoreOverview:
    """Return the rounds x sites table and the members' last errors found on ``store``."""
    from fedseg.errors import FedsegError

    sites = list(dict.fromkeys(s.id for v in plan.versions for s in v.sites))  # every site of the plan chain
    rows: list[RoundRow] = []
    with tempfile.TemporaryDirectory(prefix="fedseg-status-") as name:
        tmp = Path(name)
        for r in range(plan.rounds + 1):
            row = RoundRow(round=r, published=store.get(global_key(r), tmp / "global.fedseg"))
            contributors: set[str] = set()
            if row.published:
                try:
                    art = read_global(plan, tmp / "global.fedseg")
                    row.sha256 = art.digest
                    contributors = {str(c.get("site")) for c in art.manifest.get("contributors") or []}
                except FedsegError as exc:
                    row.error = redact(str(exc))
            if r >= 1:
                answered = {s for s in map(parse_update_name, store.list(updates_folder(r))) if s}
                report = _json(store, report_key(r), tmp) if row.published else None
                for site in sites:
                    row.sites[site], reason = _cell(site, answered, contributors, report, row.published)
                    if reason:
                        row.reasons[site] = reason
            rows.append(row)
            if not row.published and r >= 1 and not any(row.sites.values()):
                break  # nothing further can exist yet
        errors = {}
        for name_ in store.list("status"):
            body = _json(store, f"status/{name_}", tmp)
            if body is not None and name_.endswith(".json"):
                errors[name_[: -len(".json")]] = body
    return StoreOverview(store=store.url, sites=sites, rounds=rows, errors=errors)

"""`fedseg status`: rounds x sites as the store shows them, and each member's last error.

Every published global is downloaded and verified (:func:`read_global`); the sites it names as
contributors (signed) are "accepted". Rejections, their reasons and late updates come from the round's
``report.json``, which is unsigned and shown as the store has it. A cell is one of ``accepted``,
``rejected: <rule>``, ``late``, ``answered`` (round still open), ``missing`` (round closed without it)
or empty (not answered yet).

The federated validation curve comes from signed files only: each verified global's
``metrics.federated_validation`` (the point of its parent) and, once the run has ended, the verified
``final/result.json`` (its whole curve, the last global's point included, and the global it names); the
federation's test result pools the sites' verified, signed test scores of that global
(:mod:`fedseg.workflow.store.final`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.federation.plan import Plan
from fedseg.workflow.coordinator.fed_validation import MANIFEST_KEY, best_point, pooled, pooling
from fedseg.workflow.site.received import read_global
from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.final import read_result, read_scores
from fedseg.workflow.store.layout import FINAL_TEST, global_key, parse_update_name, report_key, updates_folder
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
    curve: list[dict[str, Any]] = field(default_factory=list)  # federated validation, one point per global
    best: dict[str, Any] | None = None
    result: dict[str, Any] | None = None  # the signed result, once the run has ended
    test: dict[str, Any] | None = None  # the pooled test score of the result's global and who sent one
    result_error: str | None = None  # final/result.json is on the store but does not verify

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "sites": self.sites, "rounds": [r.to_dict() for r in self.rounds],
                "errors": self.errors, "curve": self.curve, "best": self.best, "result": self.result,
                "test": self.test, "result_error": self.result_error}


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
    """Return the rounds x sites table and the members' last errors found on ``store``.

    The plan versions on the store are fetched and verified from ``plan`` first (into a temporary folder),
    so globals signed after a key rotation the caller has not yet seen verify; one that does not verify
    stops with its reason.
    """
    from fedseg.errors import FedsegError
    from fedseg.workflow.store.plan_sync import fetch_plans

    rows: list[RoundRow] = []
    points: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fedseg-status-") as name:
        tmp = Path(name)
        plan = fetch_plans(store, plan, tmp / "plans")
        sites = list(dict.fromkeys(s.id for v in plan.versions for s in v.sites))  # every site of the plan chain
        for r in range(plan.total_rounds + 1):
            row = RoundRow(round=r, published=store.get(global_key(r), tmp / "global.fedseg"))
            contributors: set[str] = set()
            if row.published:
                try:
                    art = read_global(plan, tmp / "global.fedseg")
                    row.sha256 = art.digest
                    contributors = {str(c.get("site")) for c in art.manifest.get("contributors") or []}
                    point = (art.manifest.get("metrics") or {}).get(MANIFEST_KEY)
                    if isinstance(point, dict) and isinstance(point.get("round"), int):
                        points[point["round"]] = point
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
        overview = StoreOverview(store=store.url, sites=sites, rounds=rows, errors=errors)
        _outcome(plan, store, tmp, overview, points)
    return overview


def _outcome(plan: Plan, store: Store, tmp: Path, overview: StoreOverview, points: dict[int, dict[str, Any]]) -> None:
    """Fill the curve, best point, result and test score of ``overview`` from the store's signed files."""
    from fedseg.errors import FedsegError

    try:
        overview.result = read_result(plan, store, tmp / "result.json")
    except FedsegError as exc:
        overview.result_error = redact(str(exc))
    if overview.result is not None:
        points.update({p["round"]: p for p in overview.result.get("curve") or [] if isinstance(p, dict)})
    overview.curve = [points[r] for r in sorted(points)]
    overview.best = best_point(overview.curve, plan.aggregation.early_stop_min_delta)
    if overview.result is not None:
        overview.best = overview.result.get("best")
        round_, sha256 = overview.result["round"], overview.result["sha256"]
        end = int(overview.result.get("last_round", round_))
        expected = [s.id for s in plan.in_force(end).sites]  # the sites at the end, not those that left
        scores, answered = read_scores(plan, store, FINAL_TEST, tmp, round_=round_, sha256=sha256, split="test",
                                       sites=expected)
        overview.test = {"pooled": pooled(round_, sha256, scores, **pooling(plan, end)), "answered": answered,
                         "expected": expected}

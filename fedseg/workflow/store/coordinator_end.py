"""The coordinator's end of a store-driven run: stop on a plateau, score the last global, publish the result.

See :mod:`fedseg.workflow.store.final` for the protocol. Every step is repeatable: the last global's point
is recorded once in the ledger (``global-validated``), the result is written once in the work folder
(``result.json``; Ed25519 signatures are deterministic, so the bytes never change) and recorded once
(``federation-ended``), and publishing is "create if absent, else the same bytes".
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from fedseg.federation.document import DocKind, read_document, write_document
from fedseg.workflow.coordinator.fed_validation import GLOBAL_VALIDATED, best_point, curve, early_stop, pooled, pooling
from fedseg.workflow.store.final import FEDERATION_ENDED, read_scores
from fedseg.workflow.store.layout import RESULT_KEY, parse_score_name, validation_folder

__all__ = ["ended", "finish", "last_global_scored", "plateau"]

log = logging.getLogger(__name__)


def _entries(co: Any) -> list[dict[str, Any]]:
    from fedseg.federation.ledger import Ledger

    return Ledger(co.ledger_path).entries()


def _global_digest(entries: list[dict[str, Any]], round_: int) -> str:
    return next(str(e["sha256"]) for e in entries if e["event"] == "global-written" and e.get("round") == round_)


def plateau(co: Any) -> bool:
    """Return True when the plan's early stop is on and the ledger's curve has plateaued."""
    config = co.plan.aggregation
    return early_stop(curve(_entries(co)), config.early_stop_patience, config.early_stop_min_delta)


def ended(co: Any) -> tuple[int, str] | None:
    """Return (last round, reason) of a federation that already ended in this work folder, else None.

    It ended once ``result.json`` is written (or the ledger records ``federation-ended``): a restart then
    publishes that result again and never decides anew (a plateau counting the last global's point would
    otherwise end it at the round before).
    """
    local = co.work / "result.json"
    if local.exists():
        doc = read_document(local, co.plan, DocKind.RESULT)
        return int(doc["last_round"]), str(doc["reason"])
    event = next((e for e in reversed(_entries(co)) if e["event"] == FEDERATION_ENDED), None)
    return None if event is None else (int(event["last_round"]), str(event["reason"]))


def last_global_scored(co: Any, last: int) -> bool:
    """Record the sites' signed validation of the published last global once it may close; True when recorded."""
    from fedseg.federation.ledger import Ledger

    entries = _entries(co)
    if any(e["event"] == GLOBAL_VALIDATED and e.get("round") == last for e in entries):
        return True
    plan, store = co.plan, co.store
    governing = plan.in_force(last)  # the version the sites check too (they report if members of it)
    sites, folder = {s.id for s in governing.sites}, validation_folder(last)
    deadline = governing.aggregation.round_deadline
    opened = json.loads((co.round_dir(last + 1) / "opened.json").read_text())["published_at"]
    overdue = deadline > 0 and co.clock() - float(opened) >= deadline

    def enough(answered: set[str]) -> bool:
        return bool(answered) and (answered == sites or (overdue and len(answered) >= governing.aggregation.min_sites))

    if not enough({s for s in map(parse_score_name, store.list(folder)) if s in sites}):
        return False  # not even the file names yet: nothing to download
    digest = _global_digest(entries, last)
    with tempfile.TemporaryDirectory(prefix="fedseg-final-") as name:
        scores, valid = read_scores(plan, store, folder, Path(name), round_=last, sha256=digest, split="val",
                                    sites=sites)
    if not enough(set(valid)):
        return False  # answered: only the verified scores of this global; wait for the others
    point = pooled(last, digest, scores, **pooling(plan, last))
    Ledger(co.ledger_path).append(GLOBAL_VALIDATED, round=last, sha256=digest, sites=valid, validation=point)
    log.info("the last global (round %d) was scored by %d site(s)", last, len(valid))
    return True


def finish(co: Any, last: int, reason: str) -> dict[str, Any]:
    """Write (once), record and publish the signed result naming the best global; return the result document.

    ``last`` is the last global published, ``reason`` why the run ends (``plateau`` or ``last-round``).
    """
    from fedseg.federation.ledger import Ledger

    local = co.work / "result.json"
    entries = _entries(co)
    if not local.exists():
        points = curve(entries)
        best = best_point(points, co.plan.aggregation.early_stop_min_delta)
        if best is None:
            reason, round_, digest = "no-validation", last, _global_digest(entries, last)
        else:
            round_, digest = int(best["round"]), str(best["sha256"])
        body = {"round": round_, "sha256": digest, "reason": reason, "last_round": last, "best": best,
                "curve": points}
        write_document(local, body, kind=DocKind.RESULT, key=co.key, plan=co.plan)
    doc = read_document(local, co.plan, DocKind.RESULT)
    if not any(e["event"] == FEDERATION_ENDED for e in entries):
        Ledger(co.ledger_path).append(FEDERATION_ENDED, round=doc["round"], sha256=doc["sha256"],
                                      reason=doc["reason"], last_round=doc["last_round"])
    co.create_or_same(RESULT_KEY, local, "result")
    log.info("the federation ended (%s): its result is the global of round %d (%s)", doc["reason"], doc["round"],
             str(doc["sha256"])[:12])
    return doc

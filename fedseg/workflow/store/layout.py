"""The fixed layout of a round store (the same on a folder, SFTP and S3)::

    rounds/r0000/global.fedseg           the round-0 global, published by the coordinator
    rounds/r0001/updates/<site>.fedseg   each site's update for round 1 (trained on the round-0 global)
    rounds/r0001/global.fedseg           the global of round 1, aggregated from round 1's updates
    rounds/r0001/report.json             the coordinator's report of round 1 (verdicts, reasons, late updates)
    status/<member>.json                 the last error a member met, if any (time, round, message)
    final/validation/rNNNN/<site>.json   each site's signed validation score of the last global (round NNNN)
    final/result.json                    the coordinator's signed result: the best round's global, once the run ends
    final/test/<site>.json               each site's signed test score of the result's global
    plans/plan-vNNNN.toml                each signed plan update (version 2 on), published by the coordinator

A global is published exactly once ("create if absent", see :mod:`fedseg.workflow.store.backend`): its
presence closes the round it ends. ``report.json`` and ``status/*.json`` are informative only; no decision
is taken on them. The ``final/`` documents are signed (:mod:`fedseg.federation.document`) and verified
before use (:mod:`fedseg.workflow.store.final`). Names starting with a dot are temporary files of uploads in
progress.
"""

from __future__ import annotations

import re

__all__ = ["FINAL_TEST", "FINAL_VALIDATION", "PLANS_FOLDER", "RESULT_KEY", "global_key", "parse_score_name",
           "parse_update_name", "plan_key", "report_key", "round_folder", "score_key", "status_key", "update_key",
           "updates_folder", "validation_folder"]

_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
UPDATE_SUFFIX = ".fedseg"
SCORE_SUFFIX = ".json"
RESULT_KEY = "final/result.json"
FINAL_VALIDATION = "final/validation"  # folders of the sites' signed scores (score_key)
FINAL_TEST = "final/test"


def validation_folder(round_: int) -> str:
    """Return the folder of the sites' signed validation scores of the last global, of round ``round_``.

    Per round: after a plan update extends the rounds, the scores of the former last global stay apart.
    """
    return f"{FINAL_VALIDATION}/r{round_:04d}"


def round_folder(round_: int) -> str:
    return f"rounds/r{round_:04d}"


def global_key(round_: int) -> str:
    """Return the key of the global of ``round_`` (round 0: the initial model)."""
    return f"{round_folder(round_)}/global.fedseg"


def updates_folder(round_: int) -> str:
    return f"{round_folder(round_)}/updates"


def update_key(round_: int, site: str) -> str:
    """Return the key of ``site``'s update for ``round_`` (it answers the global of ``round_ - 1``)."""
    return f"{updates_folder(round_)}/{site}{UPDATE_SUFFIX}"


def report_key(round_: int) -> str:
    return f"{round_folder(round_)}/report.json"


PLANS_FOLDER = "plans"


def plan_key(version: int) -> str:
    """Return the key of the signed plan update of ``version`` (the root plan never travels on the store)."""
    return f"{PLANS_FOLDER}/plan-v{version:04d}.toml"


def status_key(member: str) -> str:
    return f"status/{member}.json"


def parse_update_name(name: str) -> str | None:
    """Return the site id an update file name claims, or None for anything else found in the folder."""
    if not name.endswith(UPDATE_SUFFIX):
        return None
    site = name[: -len(UPDATE_SUFFIX)]
    return site if _MEMBER.fullmatch(site) else None


def score_key(folder: str, site: str) -> str:
    """Return the key of ``site``'s signed score in ``folder`` (:func:`validation_folder` or :data:`FINAL_TEST`)."""
    return f"{folder}/{site}{SCORE_SUFFIX}"


def parse_score_name(name: str) -> str | None:
    """Return the site id a score file name claims, or None for anything else found in the folder."""
    site = name[: -len(SCORE_SUFFIX)] if name.endswith(SCORE_SUFFIX) else ""
    return site if _MEMBER.fullmatch(site) else None

"""The fixed layout of a round store (the same on a folder, SFTP and S3)::

    rounds/r0000/global.fedseg           the round-0 global, published by the coordinator
    rounds/r0001/updates/<site>.fedseg   each site's update for round 1 (trained on the round-0 global)
    rounds/r0001/global.fedseg           the global of round 1, aggregated from round 1's updates
    rounds/r0001/report.json             the coordinator's report of round 1 (verdicts, reasons, late updates)
    status/<member>.json                 the last error a member met, if any (time, round, message)
    plans/plan-vNNNN.toml                each signed plan update (version 2 on), published by the coordinator

A global is published exactly once ("create if absent", see :mod:`fedseg.workflow.store.backend`): its
presence closes the round it ends. ``report.json`` and ``status/*.json`` are informative only; no decision
is taken on them. Names starting with a dot are temporary files of uploads in progress.
"""

from __future__ import annotations

import re

__all__ = ["PLANS_FOLDER", "global_key", "plan_key", "parse_update_name", "report_key", "round_folder", "status_key", "update_key",
           "updates_folder"]

_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
UPDATE_SUFFIX = ".fedseg"


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

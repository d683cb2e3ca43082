"""Signed plan chains for the lifecycle tests: write a root and plan updates in a folder, made at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan, write_plan
from fedseg.federation.plan_chain import load_chain, update_filename, write_plan_update
from fedseg.federation.plan_update import PlanChanges, next_version


def write_root(folder: Path, plan: Plan) -> Plan:
    """Write ``plan`` as ``folder/plan.toml`` (version 1) and return it loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    write_plan(plan, folder / "plan.toml")
    return load_chain(folder)


def write_update(folder: Path, current: Plan, key: PrivateKey, *, from_round: int, **changes: Any) -> Plan:
    """Sign the next version of ``current`` with ``key`` into ``folder`` and return the chain loaded again."""
    nxt = next_version(current, PlanChanges(from_round=from_round, **changes))
    write_plan_update(nxt, key, folder / update_filename(nxt.version))
    return load_chain(folder)


def signed_manifest(plan: Plan, key: PrivateKey, *, signer: str, round_: int, kind: str = "update") -> dict[str, Any]:
    """Return a minimal manifest made under the version of ``plan``'s chain in force for ``round_``."""
    governing = plan.in_force(round_)
    manifest = {"kind": kind, "round": round_, "signer": signer, "federation_id": plan.federation_id,
                "plan_sha256": governing.sha256}
    if governing.version > 1:
        manifest["plan_version"] = governing.version
    return manifest

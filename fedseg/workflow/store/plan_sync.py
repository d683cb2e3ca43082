"""Plan updates over the store: the coordinator publishes each signed version, sites fetch and verify them.

The coordinator's plan folder (``plan.toml`` and ``plan-vNNNN.toml``, written by ``fedseg plan update``)
is read again on every turn of its loop; a version not yet on the store is uploaded to
``plans/plan-vNNNN.toml`` ("create if absent") before the next global is published, so a site that sees
the global can see the plan that governs the next round. A site downloads versions newer than its
newest into its work folder (``plans/``) and accepts them only after verifying the chain from the plan it
already trusts (:func:`fedseg.federation.plan_chain.extend_chain`); a file that does not verify stops
the loop with its reason. The store stays untrusted: it can withhold an update, never forge one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedseg.errors import PlanError
from fedseg.federation.plan import Plan
from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.layout import PLANS_FOLDER, plan_key
from fedseg.workflow.store.publish import create_or_same

__all__ = ["check_not_retroactive", "fetch_plans", "publish_plans", "reload_plan"]

log = logging.getLogger(__name__)

_MAX_PLAN_BYTES = 1 << 20


def reload_plan(plan: Plan) -> Plan:
    """Return the newest version of ``plan``'s chain in its root's folder (the operator may have added one)."""
    from fedseg.federation.plan_chain import check_trusted, load_chain

    root = plan.versions[0].source
    if root is None:
        return plan
    newer = load_chain(root)
    check_trusted(newer, plan.versions[-1].version, plan.versions[-1].sha256, str(root))
    return newer


def check_not_retroactive(plan: Plan, accepted_version: int, published_round: int) -> None:
    """Refuse a version not yet used in a round that would govern a round whose global is already out.

    Those rounds were closed under an older version; a version from such a round on (say, a new
    coordinator key) would make published files fail at the sites. PlanError names the version and round.
    """
    for version in plan.versions:
        if version.version > accepted_version and version.from_round <= published_round:
            raise PlanError(f"{version.source}: plan v{version.version} takes effect from round {version.from_round}, "
                            f"but the global of round {published_round} is already published; sign it again with "
                            f"--from-round {published_round + 1} or later")


def publish_plans(store: Store, plan: Plan, published: set[int]) -> None:
    """Upload every version of ``plan``'s chain from 2 on that this loop has not published yet.

    A version already on the store must be the same bytes: another signed file of that number is a fork
    (:class:`~fedseg.workflow.store.publish.PublishConflict`).
    """
    for version in plan.versions[1:]:
        if version.version in published or version.source is None:
            continue
        if create_or_same(store, plan_key(version.version), version.source, f"plan v{version.version}"):
            log.info("published plan v%d (from round %d) to %s", version.version, version.from_round, store.url)
        published.add(version.version)


def fetch_plans(store: Store, plan: Plan, folder: Path) -> Plan:
    """Download the versions on the store newer than ``plan``'s newest into ``folder``; return the verified chain."""
    from fedseg.federation.plan_chain import extend_chain, update_version

    newest = plan.versions[-1].version
    folder = Path(folder)
    local = [p for p in folder.glob("plan-v*.toml") if (update_version(p.name) or 0) > newest]
    have = {p.name for p in local}
    for name in store.list(PLANS_FOLDER):
        version = update_version(name)
        if version is None or version <= newest or name in have:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if store.get(f"{PLANS_FOLDER}/{name}", folder / name, max_bytes=_MAX_PLAN_BYTES):
            local.append(folder / name)
    if not local:
        return plan
    try:
        extended = extend_chain(plan, local)
    except Exception:
        for path in local:  # never keep a refused file to trip over on the next start
            path.unlink(missing_ok=True)
        raise
    if extended.version > newest:
        log.info("accepted plan v%d (from round %d) from %s", extended.version, extended.from_round, store.url)
    return extended

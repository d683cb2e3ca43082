"""Make the next plan version from the newest one: the lifecycle operations of a long federation.

A site joins (``add_sites``), leaves (``remove_sites``), has its key rotated (``rotate_sites``), a key is
revoked (``revoke``: the member loses it and every artifact it signed from ``from_round`` on is refused;
a revoked site key without a rotation removes the site, a revoked coordinator key needs
``coordinator_key``), the rounds are extended (``rounds``), a setting changes (``settings``,
``section.key`` = value; never the model, the preprocessing or the privacy mode), the coordinator key is rotated (``coordinator_key``). Everything in one
version takes effect from its ``from_round``: the first round whose updates and global it governs.

The new version states every setting (it is written from :meth:`Plan.to_dict`), names the previous
version's hash and is signed by the previous coordinator key (:mod:`fedseg.federation.plan_chain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedseg.errors import PlanError
from fedseg.federation.keys import PrivateKey, PublicKey
from fedseg.federation.plan import Plan, parse_plan_bytes, plan_from_dict, plan_to_toml
from fedseg.federation.plan_link import Revocation

__all__ = ["PlanChanges", "chain_rows", "describe_changes", "next_version", "write_next_plan"]

_SECTIONS = ("model", "training", "aggregation", "preprocessing", "privacy")


@dataclass(frozen=True)
class PlanChanges:
    """What the next plan version changes, from round ``from_round`` on."""

    from_round: int
    add_sites: tuple[tuple[str, PublicKey, int | None], ...] = ()
    remove_sites: tuple[str, ...] = ()
    rotate_sites: tuple[tuple[str, PublicKey], ...] = ()
    revoke: tuple[str, ...] = ()
    rounds: int | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    coordinator_key: PublicKey | None = None


def _site_index(sites: list[dict[str, Any]], site_id: str, option: str) -> int:
    for i, site in enumerate(sites):
        if site["id"] == site_id:
            return i
    raise PlanError(f"{option} {site_id}: no such site in the plan (sites: {', '.join(s['id'] for s in sites)})")


def _revocations(current: Plan, data: dict[str, Any], changes: PlanChanges) -> list[Revocation]:
    """Return the cumulative revocations; drop a revoked site key's member unless it is rotated."""
    tip = current.versions[-1]
    revoked = list(tip.link.revoked) if tip.link is not None else []
    rotated = {site for site, _ in changes.rotate_sites}
    for key_id in changes.revoke:
        holder = next((m for v in reversed(current.versions) for m in v.members if m.key_id == key_id), None)
        if holder is None:
            raise PlanError(f"--revoke {key_id}: not a key of any version of this plan chain")
        if any(r.key_id == key_id for r in revoked):
            raise PlanError(f"--revoke {key_id}: that key of {holder.id!r} is already revoked")
        if holder.id == tip.coordinator.id and tip.coordinator.key_id == key_id and changes.coordinator_key is None:
            raise PlanError(f"--revoke {key_id}: revoking the coordinator key needs --new-coordinator-key")
        entry = next((s for s in data["sites"] if s["id"] == holder.id), None)
        if entry is not None and entry["public_key"] == holder.public_key.to_text() and holder.id not in rotated:
            data["sites"].remove(entry)
        revoked.append(Revocation(key_id, holder.id, changes.from_round))
    return revoked


_FIXED = {"model": "every global of the federation is verified against one model",
          "preprocessing": "every site's data and every global's training were prepared one way"}


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, name = dotted.partition(".")
    if section in _FIXED:
        raise PlanError(f"--set {dotted}: the {section} section cannot change in a plan update ({_FIXED[section]}); "
                        "start a new federation instead")
    if section not in _SECTIONS or not name or "." in name:
        raise PlanError(f"--set {dotted}: expected SECTION.KEY with SECTION one of "
                        f"{', '.join(s for s in _SECTIONS if s not in _FIXED)}")
    if dotted == "privacy.mode" and value != data.get("privacy", {}).get("mode", "off"):
        raise PlanError(f"--set {dotted}: the privacy mode cannot change in a plan update (the guarantee and its "
                        "accounting cover the whole federation); start a new federation instead")
    data.setdefault(section, {})[name] = value


def _check_rounds(old: int, new: int, from_round: int) -> None:
    """Refuse a new total of rounds that drops a round which may be published, or grows after the end."""
    if new < from_round - 1:
        raise PlanError(f"--rounds {new}: fewer than round {from_round - 1}, which may be published before "
                        f"--from-round {from_round}")
    if new > old and from_round > old + 1:
        raise PlanError(f"--from-round {from_round}: the federation's {old} round(s) end before it; extending the "
                        f"rounds takes effect by round {old + 1}")


def next_version(current: Plan, changes: PlanChanges) -> Plan:
    """Return the next version of ``current``'s chain with ``changes`` (not yet signed); PlanError if invalid."""
    tip = current.versions[-1]
    if current.version != tip.version:
        raise PlanError(f"{current.source}: plan v{current.version} is not the newest version (v{tip.version}); "
                        "an update follows the newest one")
    if changes.from_round < max(tip.from_round, 1):
        raise PlanError(f"--from-round {changes.from_round}: must be at least {max(tip.from_round, 1)} "
                        f"(plan v{tip.version} takes effect from round {tip.from_round})")
    data = tip.to_dict()
    sites: list[dict[str, Any]] = data["sites"]
    for site_id in changes.remove_sites:
        sites.pop(_site_index(sites, site_id, "--remove-site"))
    for site_id, key in changes.rotate_sites:
        sites[_site_index(sites, site_id, "--rotate-site")]["public_key"] = key.to_text()
    revoked = _revocations(current, data, changes)
    for site_id, key, cases in changes.add_sites:
        if any(s["id"] == site_id for s in sites):
            raise PlanError(f"--add-site {site_id}: the plan already has a site {site_id!r}")
        sites.append({"id": site_id, "public_key": key.to_text(), **({"cases": cases} if cases else {})})
    if changes.coordinator_key is not None:
        data["coordinator"]["public_key"] = changes.coordinator_key.to_text()
    if changes.rounds is not None:
        _check_rounds(tip.rounds, changes.rounds, changes.from_round)
        data["federation"]["rounds"] = changes.rounds
    for dotted, value in changes.settings:
        _set(data, dotted, value)
    data["chain"] = {"version": tip.version + 1, "previous_sha256": tip.sha256, "from_round": changes.from_round,
                     **({"revoked": [r.to_dict() for r in revoked]} if revoked else {})}
    where = f"plan v{tip.version + 1}"
    built = plan_from_dict(data, where)
    # Re-read what will be written, so the plan returned hashes exactly as its file will.
    plan = parse_plan_bytes(plan_to_toml(built).encode("utf-8"), Path(where))
    if not describe_changes(tip, plan):
        raise PlanError(f"{where}: changes nothing; give at least one change")
    return plan


def describe_changes(previous: Plan | None, plan: Plan) -> list[str]:
    """Return short lines saying what ``plan`` changes against ``previous`` (the root: "root")."""
    if previous is None:
        return ["root"]
    lines: list[str] = []
    before, after = {s.id: s for s in previous.sites}, {s.id: s for s in plan.sites}
    lines += [f"+site {s}" for s in after if s not in before]
    lines += [f"-site {s}" for s in before if s not in after]
    lines += [f"site {s} key rotated" for s in after if s in before and after[s].key_id != before[s].key_id]
    if plan.coordinator.key_id != previous.coordinator.key_id:
        lines.append("coordinator key rotated")
    old = {r.key_id for r in previous.link.revoked} if previous.link is not None else set()
    lines += [f"revoked {r.key_id} ({r.member})" for r in (plan.link.revoked if plan.link else ()) if r.key_id not in old]
    if plan.rounds != previous.rounds:
        lines.append(f"rounds {previous.rounds} -> {plan.rounds}")
    a, b = previous.to_dict(), plan.to_dict()
    for section in _SECTIONS:
        x, y = a.get(section, {}), b.get(section, {})
        lines += [f"{section}.{k} {x.get(k)!r} -> {y.get(k)!r}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
    return lines


def chain_rows(plan: Plan) -> list[dict[str, Any]]:
    """Return one row per version of ``plan``'s verified chain: version, hashes, signer, changes, first round."""
    rows, previous = [], None
    for version in plan.versions:
        signer = "out of band (root)" if previous is None else \
            f"{previous.coordinator.id} {previous.coordinator.key_id}"
        rows.append({"version": version.version, "sha256": version.sha256,
                     "previous_sha256": version.link.previous_sha256 if version.link else None, "signer": signer,
                     "changes": describe_changes(previous, version), "from_round": version.from_round,
                     "file": str(version.source) if version.source else None})
        previous = version
    return rows


def write_next_plan(current: Plan, key: PrivateKey, changes: PlanChanges, out: Path) -> tuple[Plan, Path]:
    """Make, sign and write the next version of ``current``'s chain; return it and the file written.

    ``key`` must be the newest version's coordinator key. ``out`` is a folder (the file is named
    ``plan-vNNNN.toml`` in it) or a file of that name; an existing file is never overwritten.
    """
    from fedseg.federation.plan_chain import update_filename, write_plan_update

    tip = current.versions[-1]
    if key.key_id != tip.coordinator.key_id:
        raise PlanError(f"--key {key.source}: key {key.key_id} is not the coordinator key of plan v{tip.version} "
                        f"({tip.coordinator.key_id}); only it signs the next version")
    nxt = next_version(current, changes)
    out = Path(out)
    path = out / update_filename(nxt.version) if out.is_dir() else out
    if path.name != update_filename(nxt.version):
        raise PlanError(f"--out {out}: plan v{nxt.version} must be named {update_filename(nxt.version)} (beside "
                        "plan.toml, where every command finds it)")
    if path.exists():
        raise PlanError(f"{path}: already exists; refusing to overwrite a plan version")
    write_plan_update(nxt, key, path)
    return nxt, path

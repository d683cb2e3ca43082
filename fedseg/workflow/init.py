"""Create a federation: the plan and (with the model) the signed round-0 global model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedseg.errors import PlanError
from fedseg.federation.keys import load_private_key, load_public_key
from fedseg.federation.plan import Member, Plan, new_plan, write_plan
from fedseg.fsutil import refuse_output_overlap

__all__ = ["InitResult", "init_federation", "parse_site_option"]


@dataclass(frozen=True)
class InitResult:
    plan: Plan
    plan_path: Path
    global_path: Path | None


def parse_site_option(value: str) -> tuple[str, Path, int | None]:
    """Parse ``ID=PUBFILE[:CASES]`` from ``--site`` (CASES: the site's enrolled training cases)."""
    site_id, sep, pub = value.partition("=")
    cases: int | None = None
    head, colon, tail = pub.rpartition(":")
    if colon and tail.isdigit():
        pub, cases = head, int(tail)
    if not sep or not site_id or not pub or (colon and not tail.isdigit() and tail == ""):
        raise PlanError(f"--site {value!r}: expected ID=PUBFILE[:CASES], e.g. site-a=keys/site-a.pub:120")
    return site_id, Path(pub), cases


def init_federation(
    *,
    name: str,
    coordinator_key: Path,
    sites: list[tuple[str, Path, int | None]],
    out_dir: Path,
    coordinator_id: str = "coordinator",
    passphrase: bytes | None = None,
    settings: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    aggregation: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    model: Any = None,
    privacy: Any = None,
    seed: int = 0,
    write_global: bool = True,
) -> InitResult:
    """Write ``OUT/plan.toml`` with a fresh federation id and, unless told not to, the round-0 global.

    ``settings`` overrides top-level plan fields (``rounds``); ``training``/``aggregation``/``preprocessing``
    override single settings of those tables; ``model`` replaces the model config, ``privacy`` (a
    :class:`~fedseg.privacy.PrivacyConfig`) the privacy table. The quorum defaults to a majority of the sites.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlanError(f"--out {out_dir}: expected a folder, found a file")
    plan_path = out_dir / "plan.toml"
    keys = {"coordinator key": coordinator_key, **{f"public key of {site_id}": pub for site_id, pub, _ in sites}}
    refuse_output_overlap(plan_path, keys, what="--out")  # write_initial_global checks the global's path
    if plan_path.exists():
        raise PlanError(f"{plan_path} already exists; refusing to overwrite a federation plan")
    key = load_private_key(coordinator_key, passphrase)
    members = [Member(site_id, load_public_key(pub), cases) for site_id, pub, cases in sites]
    plan = new_plan(name, Member(coordinator_id, key.public_key), members, **(settings or {}))
    changes: dict[str, Any] = {}
    if model is not None:
        changes["model"] = model
    if training:
        changes["training"] = replace(plan.training, **training)
    if aggregation:
        changes["aggregation"] = replace(plan.aggregation, **aggregation)
    if preprocessing:
        changes["preprocessing"] = replace(plan.preprocessing, **preprocessing)
    if privacy is not None:
        changes["privacy"] = privacy
    if changes:
        plan = plan.with_settings(**changes)
    out_dir.mkdir(parents=True, exist_ok=True)
    global_path = None
    if write_global:
        from fedseg.workflow.initial import write_initial_global

        global_path = write_initial_global(plan, key, out_dir, seed=seed)
    write_plan(plan, plan_path)
    return InitResult(plan=plan, plan_path=plan_path, global_path=global_path)

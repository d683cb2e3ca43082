"""What a site checks before it trains: the received global, its own key, and its dataset."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.configtools import config_from_mapping, config_to_dict
from fedseg.errors import BindingError, DatasetError, PlanError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Member, Plan

__all__ = ["check_dataset", "read_global", "read_update", "site_for_round", "site_in_chain", "site_of_key"]


def utc_now() -> datetime:
    """Return the current UTC time (the clock of expiry checks; tests replace it)."""
    return datetime.now(timezone.utc)


def read_global(plan: Plan, global_path: Path, *, now: datetime | None = None) -> Any:
    """Read and verify a global artifact against ``plan`` (signature, kind, model spec, manifest, expiry).

    Returns the :class:`~fedseg.federation.artifact.Artifact`; its :attr:`typed_manifest` is a
    :class:`~fedseg.federation.manifest.GlobalManifest` (the manifest is parsed strictly here).
    """
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.federation.manifest import format_timestamp
    from fedseg.model.spec import model_tensor_spec

    art = read_artifact(Path(global_path), plan, kind=Kind.GLOBAL, spec=model_tensor_spec(plan.model))
    manifest = art.typed_manifest  # a global is always full weights: the strict parse checks it
    plan = plan.in_force(manifest.round)  # the quorum of the plan version that governed its round
    moment = now if now is not None else utc_now()
    if manifest.expires_at is not None and manifest.expires_at < moment:
        raise BindingError(f"{global_path}: this global model expired at {format_timestamp(manifest.expires_at)}; ask the "
                           "coordinator for a current one")
    if manifest.round > plan.total_rounds:
        raise BindingError(f"{global_path}: a round-{manifest.round} global, but the plan has {plan.total_rounds} "
                           "round(s)")
    quorum = plan.aggregation.min_sites
    if manifest.round > 0 and len(manifest.contributors) < quorum:
        raise BindingError(f"{global_path}: round {manifest.round} was aggregated from {len(manifest.contributors)} "
                           f"update(s), fewer than the plan's quorum of {quorum}")
    return art


def read_update(plan: Plan, update_path: Path) -> Any:
    """Read and verify a site update against ``plan`` (signature, kind, the plan model's tensor spec, manifest).

    The checks a coordinator runs on the file itself; the round's bookkeeping (round, parent, one per
    site, example bound, outliers) needs the round's context and is screening's.
    """
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.model.spec import model_tensor_spec

    art = read_artifact(Path(update_path), plan, kind=Kind.UPDATE, spec=model_tensor_spec(plan.model))
    art.typed_manifest  # noqa: B018 - the strict parse raises on a malformed manifest
    return art


def site_of_key(plan: Plan, key: PrivateKey) -> Member:
    """Return the site member holding ``key``; PlanError when the key is not a site of the plan."""
    member = plan.member_by_key_id(key.key_id)
    if member is None or member not in plan.sites:
        who = "the coordinator's" if member is not None else "not a member's"
        raise PlanError(f"{key.source}: key id {key.key_id} is {who} key, expected the key of one of the sites "
                        f"{', '.join(s.id for s in plan.sites)} of federation {plan.name!r}")
    return member


def site_in_chain(plan: Plan, key: PrivateKey) -> Member:
    """Return the site holding ``key`` in the newest version of ``plan``'s chain that lists it.

    A key rotated out at round R still signs the rounds before R, so this accepts a key of any version;
    which rounds it may sign is the artifact checks' business. PlanError when no version lists it.
    """
    for version in reversed(plan.versions):
        member = version.member_by_key_id(key.key_id)
        if member is not None and member in version.sites:
            return member
    return site_of_key(plan, key)  # raises, naming the newest version's sites


def site_for_round(plan: Plan, key: PrivateKey, round_: int) -> Member:
    """Return the site holding ``key`` in the plan version in force for ``round_``; PlanError saying why not."""
    governing = plan.in_force(round_)
    member = governing.member_by_key_id(key.key_id)
    if member is not None and member in governing.sites:
        return member
    known = site_in_chain(plan, key)  # raises when no version lists the key at all
    raise PlanError(f"{key.source}: key {key.key_id} of site {known.id!r} may not sign round {round_}: plan "
                    f"v{governing.version} (in force from round {governing.from_round}) does not list it "
                    "(the site joins later, left, or the key was rotated out or revoked)")


def check_dataset(dataset: Any, plan: Plan) -> None:
    """Refuse a site dataset whose modalities or preprocessing settings differ from the plan's."""
    where = f"{dataset.root / 'dataset.json'}"
    if tuple(dataset.modalities) != tuple(plan.preprocessing.modalities):
        raise DatasetError(f"{where}: modalities {list(dataset.modalities)} differ from the plan's "
                           f"{list(plan.preprocessing.modalities)}")
    try:
        theirs = config_from_mapping(PreprocessConfig, dataset.preprocessing, "preprocessing")
    except Exception as exc:  # ConfigError: the dataset's settings do not even parse
        raise DatasetError(f"{where}: cannot read its preprocessing settings ({exc})") from None
    if theirs != plan.preprocessing:
        ours, other = config_to_dict(plan.preprocessing), config_to_dict(theirs)
        diff = ", ".join(f"{k}={other[k]!r} (plan: {ours[k]!r})" for k in ours if ours[k] != other[k])
        raise DatasetError(f"{where}: preprocessed with other settings than the plan's: {diff}; "
                           "run `fedseg preprocess` with this plan")

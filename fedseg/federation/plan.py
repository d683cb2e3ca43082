"""The federation plan (``plan.toml``): the root of trust, distributed out of band.

It names the federation, the coordinator and member sites with their public keys, and the model,
training, aggregation and preprocessing settings. Its hash is bound into every artifact, so a file made
under another plan is rejected.

The hash covers what the plan *states*: the SHA-256 of the canonical JSON of the parsed TOML document,
``format`` (the plan format version) included, not of every default of today's config dataclasses. A
setting added to fedseg later, with a default, therefore leaves the hash of an existing plan file (which
does not mention it) unchanged, and a running federation keeps working when a site upgrades. A plan built
in memory (``fedseg init``, :meth:`Plan.with_settings`) states everything: it hashes :meth:`Plan.to_dict`,
exactly what :func:`write_plan` writes, so the file it writes loads with the same hash.

Versions: ``plan.toml`` is version 1, the root of a signed plan chain; later versions add a ``[chain]``
table (:mod:`fedseg.federation.plan_link`) and are verified from the root by
:mod:`fedseg.federation.plan_chain`. A plan loaded with its chain carries every version
(:attr:`Plan.versions`) and gives the one in force for a round (:meth:`Plan.in_force`); a version-1 plan
states no ``[chain]`` table, so its hash is what it always was.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fedseg.configs.aggregation import AggregationConfig, check_drift_aggregation, check_privacy_aggregation
from fedseg.configs.model import ModelConfig
from fedseg.configs.preprocess import PreprocessConfig
from fedseg.configs.training import TrainingConfig
from fedseg.configtools import config_from_mapping, config_to_dict
from fedseg.errors import FedsegError, PlanError
from fedseg.federation.keys import PublicKey, parse_public_key
from fedseg.federation.plan_link import ChainLink, link_from_mapping
from fedseg.federation.plan_toml import plan_to_toml, write_plan
from fedseg.hashing import canonical_json, sha256_bytes, sha256_json
from fedseg.privacy.config import PrivacyConfig, PrivacyMode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ID_PATTERN", "Member", "Plan", "load_plan", "majority", "new_plan", "parse_plan_bytes", "plan_to_toml",
    "read_plan_bytes", "write_plan"]

#: What a plan written before these ``[training]`` keys existed meant by leaving them out. New plans write
#: every key, so only such old plans read these; a federation keeps its meaning across an upgrade.
LEGACY_TRAINING = {"lr_scope": "round", "keep_optimizer_state": False}

PLAN_FORMAT = 1
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_MAX_PLAN_BYTES = 1 << 20


@dataclass(frozen=True)
class Member:
    """A federation member: its id, Ed25519 public key and (sites) enrolled case count.

    ``cases`` is the number of training cases the site enrolled with; screening bounds the example count
    its updates may claim by it. None when the plan does not record it (plans made before it existed):
    then example-count weighting falls back to uniform weights for the round (see workflow.coordinator).
    """

    id: str
    public_key: PublicKey
    cases: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "public_key": self.public_key.to_text()}
        if self.cases is not None:
            data["cases"] = self.cases
        return data

    @property
    def key_id(self) -> str:
        return self.public_key.key_id


@dataclass(frozen=True)
class Plan:
    """A validated federation plan. ``rounds`` is the number of aggregation rounds planned."""

    name: str
    federation_id: str
    coordinator: Member
    sites: tuple[Member, ...]
    rounds: int = 10
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    # the [chain] table of a plan update (version 2 on); None for the root, version 1
    link: ChainLink | None = None
    # canonical JSON of the document this plan was parsed from; None for a plan built in memory
    stated: bytes | None = field(default=None, compare=False, repr=False)
    # The file it was loaded from, so commands can refuse to overwrite it; not part of the plan's hash.
    source: Path | None = field(default=None, compare=False, repr=False)
    # Every version of the verified chain this plan belongs to, root first (see plan_chain); () alone.
    lineage: tuple[Plan, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as plain data (the form that is hashed and written as TOML).

        The ``privacy`` table is left out while it holds only defaults (mode off), so a plan built in
        memory without privacy hashes as it did before the table existed.
        """
        data = {
            "format": PLAN_FORMAT,
            "federation": {"name": self.name, "id": self.federation_id, "rounds": self.rounds},
            "coordinator": {"id": self.coordinator.id, "public_key": self.coordinator.public_key.to_text()},
            "sites": [s.to_dict() for s in self.sites],
            "model": config_to_dict(self.model),
            "training": config_to_dict(self.training),
            "aggregation": config_to_dict(self.aggregation),
            "preprocessing": config_to_dict(self.preprocessing),
        }
        if self.privacy != PrivacyConfig():
            data["privacy"] = config_to_dict(self.privacy)
        if self.link is not None:
            data["chain"] = self.link.to_dict()
        return data

    @property
    def version(self) -> int:
        """Return the plan version: 1 for the root (a plan without a [chain] table)."""
        return 1 if self.link is None else self.link.version

    @property
    def from_round(self) -> int:
        """Return the first round this version governs (0 for the root)."""
        return 0 if self.link is None else self.link.from_round

    @property
    def versions(self) -> tuple[Plan, ...]:
        """Return the verified chain, root first (just this plan outside a chain)."""
        return self.lineage or (self,)

    @property
    def total_rounds(self) -> int:
        """Return the federation's number of rounds: the newest version's ``rounds`` (an update may change it)."""
        return self.versions[-1].rounds

    def in_force(self, round_: int) -> Plan:
        """Return the version of this plan's chain that governs ``round_`` (membership, keys, settings).

        It is the newest version whose ``from_round`` is at most ``round_``; it keeps the whole chain, so
        artifacts of other rounds still verify through it.
        """
        chosen = max([v for v in self.versions if v.from_round <= round_] or self.versions[:1], key=lambda v: v.version)
        return chosen if chosen is self or not self.lineage else replace(chosen, lineage=self.lineage)

    @property
    def sha256(self) -> str:
        """Return the plan hash bound into every artifact: of the stated document (see the module docstring)."""
        return sha256_bytes(self.stated) if self.stated is not None else sha256_json(self.to_dict())

    @property
    def members(self) -> tuple[Member, ...]:
        """Return the coordinator followed by the sites."""
        return (self.coordinator, *self.sites)

    def member_by_key_id(self, key_id: str) -> Member | None:
        """Return the member holding ``key_id``, or None."""
        return next((m for m in self.members if m.key_id == key_id), None)

    def site(self, site_id: str) -> Member:
        """Return the site ``site_id``; PlanError when it is not a member."""
        for member in self.sites:
            if member.id == site_id:
                return member
        raise PlanError(f"site {site_id!r} is not a member of federation {self.name!r}")

    def with_settings(self, **changes: Any) -> Plan:
        """Return a copy with some top-level fields replaced (validated again); it states all its settings."""
        return replace(self, stated=None, lineage=(), **changes)


def _validate(plan: Plan) -> None:
    if not plan.name.strip() or len(plan.name) > 200:
        raise PlanError(f"federation name must be 1..200 characters, got {plan.name!r}")
    try:
        uuid.UUID(plan.federation_id)
    except ValueError:
        raise PlanError(f"federation id must be a UUID, got {plan.federation_id!r}") from None
    if not 1 <= plan.rounds <= 100_000:
        raise PlanError(f"federation.rounds must lie in 1..100000, got {plan.rounds}")
    if not plan.sites:
        raise PlanError("a plan needs at least one site")
    seen_ids: set[str] = set()
    seen_keys: dict[str, str] = {}
    for member in plan.members:
        if not ID_PATTERN.fullmatch(member.id):
            raise PlanError(f"member id {member.id!r} must match [a-z0-9][a-z0-9_-]{{0,62}}")
        if member.id in seen_ids:
            raise PlanError(f"member id {member.id!r} appears twice")
        if member.key_id in seen_keys:
            raise PlanError(f"members {seen_keys[member.key_id]!r} and {member.id!r} share one public key")
        seen_ids.add(member.id)
        seen_keys[member.key_id] = member.id
    if plan.aggregation.min_sites > len(plan.sites):
        raise PlanError(
            f"aggregation.min_sites is {plan.aggregation.min_sites} but the plan has only {len(plan.sites)} site(s)"
        )
    _validate_privacy(plan)
    check_drift_aggregation(plan.training.drift_correction, plan.privacy, plan.aggregation)
    revoked = [m.id for m in plan.members if plan.link is not None and plan.link.revocation(m.key_id)]
    if revoked:
        raise PlanError(f"member(s) {', '.join(revoked)} hold a key revoked in [[chain.revoked]]")
    divisor = plan.model.divisor
    bad = [p for p, d in zip(plan.training.patch_size, divisor) if p % d]
    if bad:
        raise PlanError(
            f"training.patch_size {list(plan.training.patch_size)} must be divisible by {list(divisor)} "
            "(the product of the model strides per axis)"
        )


def _validate_privacy(plan: Plan) -> None:
    """Refuse settings that void the privacy mode's guarantee (README, "Differential privacy")."""
    check_privacy_aggregation(plan.privacy, plan.aggregation)
    missing = [s.id for s in plan.sites if s.cases is None]
    if plan.privacy.mode is PrivacyMode.DP_SGD and missing:
        raise PlanError(f"privacy.mode dp-sgd derives each site's noise from its enrolled case count; "
                        f"site(s) {', '.join(missing)} have no cases = N in [[sites]]")


def majority(n_sites: int) -> int:
    """Return the default quorum of a plan with ``n_sites`` sites: a strict majority."""
    return n_sites // 2 + 1


def new_plan(name: str, coordinator: Member, sites: list[Member], **settings: Any) -> Plan:
    """Return a plan with a fresh federation id; ``settings`` override defaults (model=..., rounds=...).

    Without an ``aggregation`` setting the quorum is a majority of the sites (:func:`majority`).
    """
    settings.setdefault("aggregation", AggregationConfig(min_sites=majority(len(sites))))
    return Plan(name=name, federation_id=str(uuid.uuid4()), coordinator=coordinator, sites=tuple(sites), **settings)


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise PlanError(f"{where}: [{key}] must be a table")
    return value


def plan_from_dict(data: Mapping[str, Any], where: str) -> Plan:
    """Build and validate a plan from parsed TOML/JSON; errors name ``where``."""
    try:
        if data.get("format") != PLAN_FORMAT:
            raise PlanError(f"expected format = {PLAN_FORMAT}, got {data.get('format')!r}")
        unknown = sorted(set(data) - {"format", "federation", "coordinator", "sites", "model", "training",
                                      "aggregation", "preprocessing", "privacy", "chain"})
        if unknown:
            raise PlanError(f"unknown table(s) {', '.join(unknown)}")
        fed = _table(data, "federation", where)
        coord = _table(data, "coordinator", where)
        if not coord:
            raise PlanError("missing [coordinator] table with id and public_key")
        sites_raw = data.get("sites", [])
        if not isinstance(sites_raw, list):
            raise PlanError("[[sites]] must be an array of tables")

        def member(raw: Any, label: str, *, site: bool) -> Member:
            allowed = {"id", "public_key", "cases"} if site else {"id", "public_key"}
            if not isinstance(raw, Mapping) or not {"id", "public_key"} <= set(raw) <= allowed:
                raise PlanError(f"{label} must have the keys id and public_key" + (" (and optionally cases)" if site else ""))
            if not isinstance(raw["id"], str) or not isinstance(raw["public_key"], str):
                raise PlanError(f"{label}: id and public_key must be strings")
            cases = raw.get("cases")
            if cases is not None and (not isinstance(cases, int) or isinstance(cases, bool) or not 1 <= cases <= 10**7):
                raise PlanError(f"{label} {raw['id']!r}: cases must be an integer in 1..10000000, got {cases!r}")
            return Member(raw["id"], parse_public_key(raw["public_key"], where=f"{label} {raw['id']!r}"), cases)

        unknown_fed = sorted(set(fed) - {"name", "id", "rounds"})
        if unknown_fed:
            raise PlanError(f"[federation]: unknown key(s) {', '.join(unknown_fed)}")
        name, fid, rounds = fed.get("name"), fed.get("id"), fed.get("rounds", 10)
        if not isinstance(name, str) or not isinstance(fid, str):
            raise PlanError("[federation] needs string keys name and id")
        if not isinstance(rounds, int) or isinstance(rounds, bool):
            raise PlanError(f"federation.rounds must be an integer, got {rounds!r}")
        try:
            stated = canonical_json(data)
        except (TypeError, ValueError) as exc:
            raise PlanError(f"the plan holds a value that is not plain data ({exc})") from None
        return Plan(
            stated=stated,
            name=name,
            federation_id=fid,
            coordinator=member(coord, "[coordinator]", site=False),
            sites=tuple(member(s, "[[sites]]", site=True) for s in sites_raw),
            rounds=rounds,
            model=config_from_mapping(ModelConfig, _table(data, "model", where), "model"),
            training=config_from_mapping(TrainingConfig, {**LEGACY_TRAINING, **_table(data, "training", where)},
                                         "training"),
            aggregation=config_from_mapping(AggregationConfig, _table(data, "aggregation", where), "aggregation"),
            preprocessing=config_from_mapping(PreprocessConfig, _table(data, "preprocessing", where), "preprocessing"),
            privacy=config_from_mapping(PrivacyConfig, _table(data, "privacy", where), "privacy"),
            link=link_from_mapping(data["chain"]) if "chain" in data else None,
        )
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}") from None
    except FedsegError as exc:  # ConfigError from a table, KeyFileError from a public key
        raise PlanError(f"{where}: {exc}") from None


def read_plan_bytes(path: Path) -> bytes:
    """Return the bytes of a plan file (at most 1 MiB); PlanError naming the file otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_PLAN_BYTES:
            raise PlanError(f"{path}: a plan must be under 1 MiB")
        return path.read_bytes()
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan ({exc.strerror})") from None


def parse_plan_bytes(raw: bytes, path: Path) -> Plan:
    """Parse and validate the TOML bytes of one plan version read from ``path`` (no chain checks)."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{path}: expected a TOML plan, it does not parse ({exc})") from None
    return replace(plan_from_dict(data, str(path)), source=Path(path))


def load_plan(path: Path) -> Plan:
    """Read and validate a plan with its verified chain: ``plan.toml``, a chain folder, or one plan update.

    The signed updates ``plan-vNNNN.toml`` beside the root ``plan.toml`` are verified from it and the newest
    version is returned (:func:`fedseg.federation.plan_chain.load_chain`); without any it is the root.
    """
    from fedseg.federation.plan_chain import load_chain

    return load_chain(Path(path))

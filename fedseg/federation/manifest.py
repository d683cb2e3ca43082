"""Typed artifact manifests: what a global model or a site update says about itself, signed.

A manifest is JSON inside the artifact header (see :mod:`fedseg.federation.envelope`), signed as the
canonical JSON of exactly the dict :meth:`GlobalManifest.to_dict` / :meth:`UpdateManifest.to_dict`
return. Those dicts are the files' format: the same keys, values and omissions as the hand-built dicts of
fedseg 0.1 (``tests/fixtures/compat-v0_1``), so files written before verify and parse.

* The caller's part (kind, round, signer, parent, weights, model, ...) comes from the builders
  :func:`initial_global_manifest`, :func:`aggregated_global_manifest` and :func:`update_manifest`.
* The writer's part (the *seal*: payload digest and size, dtype, tensor table, software, format
  version, federation and plan binding) is filled by :func:`~fedseg.federation.artifact.write_artifact`;
  it is ``None`` until then and omitted from :meth:`to_dict` while ``None``.
* Optional fields that today's files omit when absent (a global's ``seed``, ``metrics`` and
  ``num_examples``) are ``None`` when absent; ``parent_sha256`` and a global's ``strategy`` are written
  even when null, as they always were.

Times are UTC, written ``YYYY-MM-DDTHH:MM:SSZ`` (:func:`format_timestamp`); :func:`parse_timestamp`
reads any ISO 8601 time with a timezone and returns it in UTC. ``metrics`` stays a site-level mapping.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from fedseg.errors import ArtifactError

__all__ = [
    "TIME_FORMAT",
    "Contributor",
    "DType",
    "GlobalManifest",
    "Kind",
    "Manifest",
    "StrategyRecord",
    "UpdateManifest",
    "WeightsKind",
    "aggregated_global_manifest",
    "format_timestamp",
    "initial_global_manifest",
    "manifest_from_dict",
    "parse_timestamp",
    "update_manifest",
]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Kind(str, enum.Enum):
    """What an artifact holds: a global model (coordinator) or a site's update."""

    GLOBAL = "global"
    UPDATE = "update"


class WeightsKind(str, enum.Enum):
    """Whether the tensors are the model weights or the local-minus-global difference (updates only)."""

    FULL = "full"
    DELTA = "delta"


class DType(str, enum.Enum):
    """The one floating-point type of every tensor of a payload."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SSZ`` (seconds; a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def parse_timestamp(value: Any) -> datetime | None:
    """Return an aware UTC datetime for an ISO 8601 string with a timezone (``...Z``), else None."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return stamp.astimezone(timezone.utc)


@dataclass(frozen=True)
class Contributor:
    """One accepted update of an aggregated global."""

    site: str | None
    sha256: str | None
    num_examples: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "sha256": self.sha256, "num_examples": self.num_examples}


@dataclass(frozen=True)
class StrategyRecord:
    """The aggregation strategy that made a global and its parameters."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class _Seal:
    """The fields ``write_artifact`` fills; None until the artifact is written."""

    federation_id: str | None = None
    plan_sha256: str | None = None
    payload_sha256: str | None = None
    payload_bytes: int | None = None
    dtype: DType | None = None
    tensors: Mapping[str, tuple[int, ...]] | None = None
    software: Mapping[str, str | None] | None = None
    format_version: int | None = None


@dataclass(frozen=True)
class GlobalManifest(_Seal):
    """A global model's manifest (signed by the coordinator). ``round`` 0 is the seeded initial model."""

    round: int = 0
    signer: str = ""
    parent_sha256: str | None = None
    model: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    expires_at: datetime | None = None
    contributors: tuple[Contributor, ...] = ()
    strategy: StrategyRecord | None = None
    num_examples: int | None = None
    metrics: Mapping[str, Any] | None = None
    seed: int | None = None
    weights: WeightsKind = WeightsKind.FULL

    kind = Kind.GLOBAL

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as written and signed (see the module docstring for omissions)."""
        out = _head(self)
        out.update(contributors=[c.to_dict() for c in self.contributors],
                   strategy=self.strategy.to_dict() if self.strategy is not None else None)
        if self.expires_at is not None:
            out["expires_at"] = format_timestamp(self.expires_at)
        for name in ("num_examples", "seed"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.metrics is not None:
            out["metrics"] = dict(self.metrics)
        return out


@dataclass(frozen=True)
class UpdateManifest(_Seal):
    """A site update's manifest (signed by the site): its round answers the global of ``round - 1``."""

    round: int = 1
    signer: str = ""
    parent_sha256: str | None = None
    model: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    weights: WeightsKind = WeightsKind.FULL
    num_examples: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)

    kind = Kind.UPDATE

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as written and signed."""
        out = _head(self)
        out.update(num_examples=self.num_examples, metrics=dict(self.metrics), training=dict(self.training))
        return out


Manifest = GlobalManifest | UpdateManifest


def _head(m: GlobalManifest | UpdateManifest) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": m.kind.value, "round": m.round, "signer": m.signer,
                           "parent_sha256": m.parent_sha256, "weights": m.weights.value, "model": dict(m.model)}
    if m.created_at is not None:
        out["created_at"] = format_timestamp(m.created_at)
    for f in fields(_Seal):
        value = getattr(m, f.name)
        if value is None:
            continue
        if f.name == "dtype":
            value = value.value
        elif f.name == "tensors":
            value = {name: list(shape) for name, shape in value.items()}
        elif f.name == "software":
            value = dict(value)
        out[f.name] = value
    return out


# -------------------------------------------------------------------------------------------- builders


def initial_global_manifest(*, signer: str, model: Mapping[str, Any], seed: int, created: datetime,
                            expiry_days: float) -> GlobalManifest:
    """Return the manifest of the seeded round-0 global (no parent, no strategy, no contributors)."""
    return GlobalManifest(round=0, signer=signer, parent_sha256=None, model=dict(model), created_at=created,
                          expires_at=created + timedelta(days=expiry_days), contributors=(), strategy=None,
                          metrics={}, seed=seed)


def aggregated_global_manifest(*, round_: int, signer: str, parent_sha256: str, model: Mapping[str, Any],
                               contributors: list[Contributor], strategy: StrategyRecord, created: datetime,
                               expiry_days: float) -> GlobalManifest:
    """Return the manifest of the global of ``round_`` aggregated from ``contributors``."""
    return GlobalManifest(round=round_, signer=signer, parent_sha256=parent_sha256, model=dict(model),
                          created_at=created, expires_at=created + timedelta(days=expiry_days),
                          contributors=tuple(contributors), strategy=strategy,
                          num_examples=sum(c.num_examples or 0 for c in contributors))


def update_manifest(*, round_: int, signer: str, parent_sha256: str, weights: WeightsKind, num_examples: int,
                    metrics: Mapping[str, Any], training: Mapping[str, Any], model: Mapping[str, Any],
                    created: datetime) -> UpdateManifest:
    """Return the manifest of a site update for ``round_`` answering the global ``parent_sha256``."""
    return UpdateManifest(round=round_, signer=signer, parent_sha256=parent_sha256, weights=WeightsKind(weights),
                          num_examples=num_examples, metrics=dict(metrics), training=dict(training),
                          model=dict(model), created_at=created)


# ------------------------------------------------------------------------------------------------ parse

_SEAL = {f.name for f in fields(_Seal)}
_COMMON_REQUIRED = {"kind", "round", "signer", "parent_sha256", "weights", "model", "created_at"} | _SEAL
_REQUIRED = {Kind.GLOBAL: _COMMON_REQUIRED | {"contributors", "strategy"},
             Kind.UPDATE: _COMMON_REQUIRED | {"num_examples", "metrics", "training"}}
_OPTIONAL = {Kind.GLOBAL: {"expires_at", "num_examples", "metrics", "seed"}, Kind.UPDATE: set()}


class _Fields:
    """Typed access to one manifest dict; every error names ``where`` and the field."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def fail(self, name: str, expected: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: manifest {name} must be {expected}, got {self.data.get(name)!r}")

    def int(self, name: str, minimum: int = 0, optional: bool = False) -> Any:
        value = self.data.get(name)
        if optional and value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(name, f"an integer >= {minimum}")
        return value

    def str(self, name: str, optional: bool = False) -> Any:
        value = self.data.get(name)
        if not (isinstance(value, str) or (optional and value is None)):
            raise self.fail(name, "a string" + (" or null" if optional else ""))
        return value

    def mapping(self, name: str, optional: bool = False) -> Any:
        value = self.data.get(name)
        if optional and value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(name, "an object")
        return dict(value)

    def time(self, name: str, optional: bool = False) -> datetime | None:
        value = self.data.get(name)
        if optional and name not in self.data:
            return None
        stamp = parse_timestamp(value)
        if stamp is None or format_timestamp(stamp) != value:
            raise self.fail(name, "a UTC time YYYY-MM-DDTHH:MM:SSZ")
        return stamp

    def enum(self, name: str, kind: type[enum.Enum]) -> Any:
        try:
            return kind(self.data.get(name))
        except ValueError:
            allowed = " or ".join(repr(k.value) for k in kind)
            raise self.fail(name, allowed) from None


def _tensors(f: _Fields) -> dict[str, tuple[int, ...]]:
    table = f.mapping("tensors")
    if not all(isinstance(s, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in s)
               for s in table.values()):
        raise f.fail("tensors", "an object mapping names to shapes (lists of integers >= 0)")
    return {name: tuple(shape) for name, shape in table.items()}


def _contributor(raw: Any, where: str) -> Contributor:
    f = _Fields(raw if isinstance(raw, dict) else {}, f"{where}: contributor")
    if not isinstance(raw, dict) or set(raw) != {"site", "sha256", "num_examples"}:
        raise ArtifactError(f"{where}: manifest contributors must be objects of site, sha256, num_examples; "
                            f"got {raw!r}")
    return Contributor(f.str("site", optional=True), f.str("sha256", optional=True),
                       f.int("num_examples", optional=True))


def manifest_from_dict(data: Any, where: str) -> GlobalManifest | UpdateManifest:
    """Parse and validate a sealed manifest (as read from a file); ArtifactError names ``where`` and the field.

    Strict: the kind decides which fields must be present and which may be; any other field, a missing
    one or a wrong type is an error. Values the signature covers are kept as they are, so
    ``manifest_from_dict(d, w).to_dict() == d``.
    """
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{where}: the manifest must be an object, got {type(data).__name__}")
    f = _Fields(data, where)
    kind = f.enum("kind", Kind)
    missing = sorted(_REQUIRED[kind] - set(data))
    if missing:
        raise ArtifactError(f"{where}: the {kind.value} manifest lacks {', '.join(missing)}")
    unknown = sorted(set(data) - _REQUIRED[kind] - _OPTIONAL[kind])
    if unknown:
        raise ArtifactError(f"{where}: the {kind.value} manifest has unknown field(s) {', '.join(unknown)}")
    seal = dict(federation_id=f.str("federation_id"), plan_sha256=f.str("plan_sha256"),
                payload_sha256=f.str("payload_sha256"), payload_bytes=f.int("payload_bytes"),
                dtype=f.enum("dtype", DType), tensors=_tensors(f), software=f.mapping("software"),
                format_version=f.int("format_version", minimum=1))
    head = dict(round=f.int("round"), signer=f.str("signer"), parent_sha256=f.str("parent_sha256", optional=True),
                model=f.mapping("model"), created_at=f.time("created_at"), weights=f.enum("weights", WeightsKind))
    if kind is Kind.UPDATE:
        return UpdateManifest(**seal, **head, num_examples=f.int("num_examples"), metrics=f.mapping("metrics"),
                              training=f.mapping("training"))
    if head["weights"] is not WeightsKind.FULL:
        raise f.fail("weights", "'full' in a global model")
    contributors = data["contributors"]
    if not isinstance(contributors, list):
        raise f.fail("contributors", "a list")
    strategy = f.mapping("strategy", optional=True)
    if strategy is not None:
        s = _Fields(strategy, f"{where}: strategy")
        if set(strategy) != {"name", "params"}:
            raise f.fail("strategy", "null or an object of name and params")
        strategy = StrategyRecord(s.str("name"), s.mapping("params"))
    return GlobalManifest(**seal, **head, expires_at=f.time("expires_at", optional=True),
                          contributors=tuple(_contributor(c, where) for c in contributors), strategy=strategy,
                          num_examples=f.int("num_examples", optional=True),
                          metrics=f.mapping("metrics", optional=True), seed=f.int("seed", optional=True))


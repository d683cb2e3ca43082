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
  ``num_examples``; either kind's ``privacy``, the accounting of a differentially private round) are
  ``None`` when absent; ``parent_sha256`` and a global's ``strategy`` are written
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

__all__ = ["TIME_FORMAT", "Contributor", "DType", "GlobalManifest", "Kind", "Manifest", "StrategyRecord",
           "UpdateManifest", "WeightsKind", "aggregated_global_manifest", "format_timestamp",
           "initial_global_manifest", "manifest_from_dict", "parse_timestamp", "update_manifest"]

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
    plan_version: int | None = None  # the plan version it was made under; omitted (None) for version 1


@dataclass(frozen=True)
class _Head(_Seal):
    """The fields both kinds carry (the caller's part)."""

    round: int = 0
    signer: str = ""
    parent_sha256: str | None = None
    model: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    weights: WeightsKind = WeightsKind.FULL


@dataclass(frozen=True)
class GlobalManifest(_Head):
    """A global model's manifest (signed by the coordinator). ``round`` 0 is the seeded initial model."""

    expires_at: datetime | None = None
    contributors: tuple[Contributor, ...] = ()
    strategy: StrategyRecord | None = None
    num_examples: int | None = None
    metrics: Mapping[str, Any] | None = None
    seed: int | None = None
    privacy: Mapping[str, Any] | None = None

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
        if self.privacy is not None:
            out["privacy"] = dict(self.privacy)
        return out


@dataclass(frozen=True)
class UpdateManifest(_Head):
    """A site update's manifest (signed by the site): its round answers the global of ``round - 1``."""

    num_examples: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    privacy: Mapping[str, Any] | None = None

    kind = Kind.UPDATE

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as written and signed."""
        out = _head(self)
        out.update(num_examples=self.num_examples, metrics=dict(self.metrics), training=dict(self.training))
        if self.privacy is not None:
            out["privacy"] = dict(self.privacy)
        return out


Manifest = GlobalManifest | UpdateManifest


def _head(m: GlobalManifest | UpdateManifest) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": m.kind.value, "round": m.round, "signer": m.signer,
                           "parent_sha256": m.parent_sha256, "weights": m.weights.value, "model": dict(m.model)}
    if m.created_at is not None:
        out["created_at"] = format_timestamp(m.created_at)
    out.update({f.name: getattr(m, f.name) for f in fields(_Seal) if getattr(m, f.name) is not None})
    if m.dtype is not None:
        out["dtype"] = m.dtype.value
    if m.tensors is not None:
        out["tensors"] = {name: list(shape) for name, shape in m.tensors.items()}
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
                               expiry_days: float, privacy: Mapping[str, Any] | None = None,
                               metrics: Mapping[str, Any] | None = None) -> GlobalManifest:
    """Return the manifest of the global of ``round_`` aggregated from ``contributors`` (``metrics``: site-level)."""
    return GlobalManifest(round=round_, signer=signer, parent_sha256=parent_sha256, model=dict(model),
                          created_at=created, expires_at=created + timedelta(days=expiry_days),
                          contributors=tuple(contributors), strategy=strategy,
                          num_examples=sum(c.num_examples or 0 for c in contributors),
                          metrics=dict(metrics) if metrics is not None else None, privacy=dict(privacy) if privacy is not None else None)


def update_manifest(*, round_: int, signer: str, parent_sha256: str, weights: WeightsKind, num_examples: int,
                    metrics: Mapping[str, Any], training: Mapping[str, Any], model: Mapping[str, Any],
                    created: datetime, privacy: Mapping[str, Any] | None = None) -> UpdateManifest:
    """Return the manifest of a site update for ``round_`` answering the global ``parent_sha256``."""
    return UpdateManifest(round=round_, signer=signer, parent_sha256=parent_sha256, weights=WeightsKind(weights),
                          num_examples=num_examples, metrics=dict(metrics), training=dict(training),
                          model=dict(model), created_at=created, privacy=dict(privacy) if privacy is not None else None)


# ------------------------------------------------------------------------------------------------ parse

_SEAL = {f.name for f in fields(_Seal)} - {"plan_version"}
_COMMON_REQUIRED = {"kind", "round", "signer", "parent_sha256", "weights", "model", "created_at"} | _SEAL
_REQUIRED = {Kind.GLOBAL: _COMMON_REQUIRED | {"contributors", "strategy"},
             Kind.UPDATE: _COMMON_REQUIRED | {"num_examples", "metrics", "training"}}
_OPTIONAL = {Kind.GLOBAL: {"expires_at", "num_examples", "metrics", "seed", "privacy", "plan_version"},
             Kind.UPDATE: {"privacy", "plan_version"}}


def _field(data: Mapping[str, Any], name: str, where: str, check: Any, expected: str, optional: bool = False) -> Any:
    """Return ``data[name]`` when ``check`` accepts it (or it is None and ``optional``); else ArtifactError."""
    value = data.get(name)
    if (optional and value is None) or check(value):
        return value
    raise ArtifactError(f"{where}: manifest {name} must be {expected}{' or null' if optional else ''}, got {value!r}")


def _is_int(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and all(_is_int(n) for n in value)


def _time(data: Mapping[str, Any], name: str, where: str) -> datetime:
    """Return the UTC time ``data[name]``, which must be written exactly as :func:`format_timestamp` does."""
    stamp = parse_timestamp(data.get(name))
    if stamp is None or format_timestamp(stamp) != data.get(name):
        raise ArtifactError(f"{where}: manifest {name} must be a UTC time YYYY-MM-DDTHH:MM:SSZ, got {data.get(name)!r}")
    return stamp


def _enum(data: Mapping[str, Any], name: str, where: str, kind: type[enum.Enum]) -> Any:
    allowed = {k.value for k in kind}
    return kind(_field(data, name, where, lambda v: v in allowed, " or ".join(sorted(map(repr, allowed)))))


def _contributor(raw: Any, where: str) -> Contributor:
    if not isinstance(raw, dict) or set(raw) != {"site", "sha256", "num_examples"}:
        raise ArtifactError(f"{where}: manifest contributors must be objects of site, sha256, num_examples; "
                            f"got {raw!r}")
    w = f"{where}: contributor"
    return Contributor(_field(raw, "site", w, _is_str, "a string", True),
                       _field(raw, "sha256", w, _is_str, "a string", True),
                       _field(raw, "num_examples", w, _is_int, "an integer >= 0", True))


def manifest_from_dict(data: Any, where: str) -> GlobalManifest | UpdateManifest:
    """Parse and validate a sealed manifest (as read from a file); ArtifactError names ``where`` and the field.

    Strict: the kind decides which fields must be present and which may be; any other field, a missing
    one or a wrong type is an error. Values the signature covers are kept as they are, so
    ``manifest_from_dict(d, w).to_dict() == d``.
    """
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{where}: the manifest must be an object, got {type(data).__name__}")
    kind = _enum(data, "kind", where, Kind)
    missing = sorted(_REQUIRED[kind] - set(data))
    if missing:
        raise ArtifactError(f"{where}: the {kind.value} manifest lacks {', '.join(missing)}")
    unknown = sorted(set(data) - _REQUIRED[kind] - _OPTIONAL[kind])
    if unknown:
        raise ArtifactError(f"{where}: the {kind.value} manifest has unknown field(s) {', '.join(unknown)}")

    def get(name: str, check: Any, expected: str, optional: bool = False) -> Any:
        value = _field(data, name, where, check, expected, optional)
        return dict(value) if isinstance(value, dict) else value

    tensors = get("tensors", lambda v: _is_dict(v) and all(map(_is_shape, v.values())),
                  "an object mapping names to shapes (lists of integers >= 0)")
    common = dict(
        federation_id=get("federation_id", _is_str, "a string"), plan_sha256=get("plan_sha256", _is_str, "a string"),
        payload_sha256=get("payload_sha256", _is_str, "a string"),
        payload_bytes=get("payload_bytes", _is_int, "an integer >= 0"), dtype=_enum(data, "dtype", where, DType),
        tensors={name: tuple(shape) for name, shape in tensors.items()},
        software=get("software", _is_dict, "an object"),
        format_version=get("format_version", lambda v: _is_int(v, 1), "an integer >= 1"),
        plan_version=get("plan_version", lambda v: _is_int(v, 1), "an integer >= 1", True),
        round=get("round", _is_int, "an integer >= 0"), signer=get("signer", _is_str, "a string"),
        parent_sha256=get("parent_sha256", _is_str, "a string", True), model=get("model", _is_dict, "an object"),
        created_at=_time(data, "created_at", where), weights=_enum(data, "weights", where, WeightsKind))
    if kind is Kind.UPDATE:
        return UpdateManifest(**common, num_examples=get("num_examples", _is_int, "an integer >= 0"),
                              metrics=get("metrics", _is_dict, "an object"),
                              training=get("training", _is_dict, "an object"),
                              privacy=get("privacy", _is_dict, "an object", True))
    get("weights", lambda v: v == WeightsKind.FULL.value, "'full' in a global model")
    strategy = get("strategy", lambda v: _is_dict(v) and set(v) == {"name", "params"} and _is_str(v["name"])
                   and _is_dict(v["params"]), "an object of a name and params", True)
    return GlobalManifest(
        **common, expires_at=_time(data, "expires_at", where) if "expires_at" in data else None,
        contributors=tuple(_contributor(c, where) for c in get("contributors", lambda v: isinstance(v, list), "a list")),
        strategy=StrategyRecord(strategy["name"], dict(strategy["params"])) if strategy is not None else None,
        num_examples=get("num_examples", _is_int, "an integer >= 0", True),
        metrics=get("metrics", _is_dict, "an object", True), seed=get("seed", _is_int, "an integer >= 0", True),
        privacy=get("privacy", _is_dict, "an object", True))

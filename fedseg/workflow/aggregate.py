"""The coordinator's round: screen the round's signed updates and write the next signed global model.

Order of work (DESIGN.md §4.5, §5):

1. verify the current global against the plan (kind global); its verified tensors give the expected
   tensor spec (names, shapes) of every update;
2. screen every update: ``read_artifact`` checks signature, signer, federation/plan binding, kind, spec
   and finiteness; then round = current + 1, parent = current digest, weights "full"/"delta", example
   count in 1..plan.training.max_examples, model config = the plan's, one update per site (a site with
   two different updates in this call has all of them rejected; one whose ledger already records another
   accepted update for the round is rejected), and finally the robust z-score of the delta norms;
3. combine the accepted ones if at least ``min_sites`` remain (else :class:`QuorumError`, nothing
   written): mean strategies stream (each update is added to one float64 running sum while it is
   screened; if a later rule rejects an update already added, the sum is rebuilt from a second verified
   read of the accepted files); median / trimmed mean spill each verified update to a private scratch
   HDF5 file and then work tensor by tensor;
4. write the next global atomically, signed by the coordinator, with deterministic ``created_at`` (the
   latest accepted update's, or ``timestamp``) and ``expires_at``; the server optimizer state beside the
   ledger; and only then the ledger lines. Updates are processed in a canonical order (site, digest), so a
   rerun with the same inputs gives a byte-identical global; when the ledger already records that global,
   nothing is appended ("already aggregated").
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configtools import config_to_dict
from fedseg.errors import AggregationError, ArtifactError, StateError
from fedseg.federation import screening
from fedseg.federation.config import Strategy
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.federation.screening import Reason
from fedseg.federation.strategies import (
    Combine,
    WeightedMean,
    clip_scale,
    coordinate_median,
    coordinate_trimmed_mean,
    get_strategy,
    strategy_params,
)
from fedseg.fsutil import fsync_dir

__all__ = ["AggregateReport", "QuorumError", "UpdateVerdict", "aggregate_round", "default_ledger_path"]

log = logging.getLogger(__name__)

STATE_FILE = "server-state.h5"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class UpdateVerdict:
    """What screening decided about one update file."""

    path: Path
    site: str | None = None
    claimed_site: str | None = None
    sha256: str | None = None
    num_examples: int | None = None
    norm: float | None = None
    reason: Reason | None = None
    created_at: datetime | None = field(default=None, repr=False)
    weights: str = "full"
    scratch: Path | None = field(default=None, repr=False)
    added: bool = field(default=False, repr=False)

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "site": self.site, "claimed_site": self.claimed_site, "sha256": self.sha256,
                "num_examples": self.num_examples, "norm": self.norm, "accepted": self.accepted,
                "rule": self.reason.rule if self.reason else None, "reason": self.reason.detail if self.reason else None}


@dataclass
class AggregateReport:
    """The outcome of a round: per-update verdicts and what was written."""

    round: int
    strategy: str
    params: dict[str, Any]
    min_sites: int
    verdicts: list[UpdateVerdict]
    status: str = "screened"  # screened | dry-run | written | already-aggregated | below-quorum
    out: Path | None = None
    digest: str | None = None
    ledger: Path | None = None
    server_state: Path | None = None
    created_at: str | None = None
    expires_at: str | None = None
    parent: str | None = None

    @property
    def accepted(self) -> list[UpdateVerdict]:
        return [v for v in self.verdicts if v.accepted]

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "strategy": {"name": self.strategy, "params": self.params},
                "min_sites": self.min_sites, "status": self.status, "accepted": len(self.accepted),
                "rejected": len(self.verdicts) - len(self.accepted), "updates": [v.to_dict() for v in self.verdicts],
                "out": str(self.out) if self.out else None, "sha256": self.digest,
                "ledger": str(self.ledger) if self.ledger else None,
                "server_state": str(self.server_state) if self.server_state else None,
                "created_at": self.created_at, "expires_at": self.expires_at, "parent_sha256": self.parent}


class QuorumError(AggregationError):
    """Fewer than ``min_sites`` updates survived screening; nothing was written. ``report`` says why."""

    def __init__(self, message: str, report: AggregateReport) -> None:
        super().__init__(message)
        self.report = report


def default_ledger_path(out: Path) -> Path:
    """Return the default ledger path: ``ledger.jsonl`` beside the output global."""
    return Path(out).parent / "ledger.jsonl"


def _delta64(x: np.ndarray, g: np.ndarray, weights: str) -> np.ndarray:
    """Return the float64 delta of one tensor (client - global; a "delta" update already is one)."""
    if weights == "delta":
        return x.astype(np.float64)
    return np.subtract(x, g, dtype=np.float64)


def _screen_manifest(art: Any, verdict: UpdateVerdict, *, next_round: int, parent: str, plan: Plan,
                     model: dict[str, Any]) -> Reason | None:
    m = art.manifest
    return (screening.check_round(m, next_round) or screening.check_parent(m, parent)
            or screening.check_weights(m) or screening.check_examples(m, plan.training.max_examples)
            or screening.check_model(m, model) or screening.check_created_at(m))


def _sort_key(path: Path) -> tuple[str, str, str]:
    """Order inputs canonically (claimed signer, digest, path) so reruns sum in the same order."""
    from fedseg.federation.artifact import read_manifest_unverified

    try:
        m = read_manifest_unverified(path)  # ordering only; every decision uses the verified manifest
        return (str(m.get("signer")), str(m.get("payload_sha256")), str(path))
    except ArtifactError:
        return ("\uffff", "", str(path))


def _spill(tensors: dict[str, np.ndarray], path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for name, array in tensors.items():
            f.create_dataset(name, data=array.reshape(-1))  # flat, so the combine step can read slices


@contextlib.contextmanager
def _scratch_dir(parent: Path, needed: bool) -> Iterator[Path | None]:
    if not needed:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=".fedseg-scratch-", dir=parent) as d:
        yield Path(d)


def aggregate_round(
    *,
    plan: Plan,
    global_path: Path,
    key: PrivateKey | None,
    update_paths: Sequence[Path],
    out: Path,
    strategy: Strategy | str | None = None,
    min_sites: int | None = None,
    dry_run: bool = False,
    ledger_path: Path | None = None,
    timestamp: datetime | None = None,
) -> AggregateReport:
    """Screen ``update_paths`` against the current global and, unless ``dry_run``, write the next global.

    Raises QuorumError (with the report) when fewer than ``min_sites`` updates are acceptable, StateError
    when the ledger records a different global for this round or for the current one, ArtifactError when
    the current global does not verify.
    """
    from fedseg.federation.artifact import Kind, TensorSpec, read_artifact
    from fedseg.federation.ledger import Ledger

    out = Path(out)
    ledger_path = Path(ledger_path) if ledger_path else default_ledger_path(out)
    if key is not None and key.key_id != plan.coordinator.key_id:
        raise AggregationError(f"--key {key.source}: key {key.key_id} is not the plan key of coordinator "
                               f"{plan.coordinator.id!r} ({plan.coordinator.key_id})")
    current = read_artifact(Path(global_path), plan, kind=Kind.GLOBAL)
    g = current.tensors
    spec = {name: TensorSpec(tuple(t.shape), "float32") for name, t in g.items()}
    this_round, next_round = current.round, current.round + 1
    config = plan.aggregation if strategy is None else replace(plan.aggregation, strategy=Strategy(strategy))
    strat = get_strategy(config.strategy)
    quorum = plan.aggregation.min_sites if min_sites is None else int(min_sites)
    if quorum < 1:
        raise AggregationError(f"--min-sites must be >= 1, got {quorum}")
    model = config_to_dict(plan.model)
    ledger = Ledger(ledger_path)
    ledger.verify()
    _check_current_global(ledger, this_round, current.digest, global_path)
    in_ledger = {e["site"]: e["sha256"] for e in ledger.accepted_updates(next_round)}
    report = AggregateReport(round=next_round, strategy=config.strategy.value,
                             params=strategy_params(config.strategy, config), min_sites=quorum, verdicts=[],
                             ledger=ledger_path, parent=current.digest)
    mean = strat.combine is Combine.MEAN
    acc = WeightedMean() if mean and not dry_run else None

    with _scratch_dir(out.parent if out.parent.exists() else Path("."), not mean and not dry_run) as scratch:
        by_site: dict[str, list[UpdateVerdict]] = {}
        for path in sorted((Path(p) for p in update_paths), key=_sort_key):
            verdict = UpdateVerdict(path=path)
            report.verdicts.append(verdict)
            try:
                art = read_artifact(path, plan, kind=Kind.UPDATE, spec=spec)
            except ArtifactError as exc:
                verdict.reason = screening.reason_from_error(exc)
                with contextlib.suppress(Exception):
                    from fedseg.federation.artifact import read_manifest_unverified

                    verdict.claimed_site = str(read_manifest_unverified(path).get("signer"))
                continue
            m = art.manifest
            verdict.site, verdict.sha256 = art.signer.id, art.digest
            verdict.num_examples = m.get("num_examples") if isinstance(m.get("num_examples"), int) else None
            verdict.weights = str(m.get("weights"))
            verdict.reason = _screen_manifest(art, verdict, next_round=next_round, parent=current.digest,
                                              plan=plan, model=model)
            if verdict.reason is None and in_ledger.get(art.signer.id, art.digest) != art.digest:
                verdict.reason = Reason("duplicate", f"the ledger already holds update "
                                        f"{in_ledger[art.signer.id][:12]} from {art.signer.id!r} for round {next_round}")
            if verdict.reason is None:
                verdict.reason = _claim_site(by_site, verdict, next_round)
            if verdict.reason is not None:
                continue
            verdict.created_at = screening.parse_timestamp(m.get("created_at"))
            verdict.norm = _consume(art.tensors, g, verdict, acc=acc, scratch=scratch, clip_norm=config.clip_norm)
            del art

        candidates = {id(v): v for v in report.verdicts if v.accepted}
        outliers = screening.norm_outliers({str(k): v.norm or 0.0 for k, v in candidates.items()}, config.outlier_z)
        for k, reason in outliers.items():
            candidates[int(k)].reason = reason
        accepted = report.accepted
        if len(accepted) < quorum:
            report.status = "below-quorum"
            raise QuorumError(f"round {next_round}: {len(accepted)} acceptable update(s), the quorum is {quorum}; "
                              "nothing was written", report)
        if dry_run:
            report.status = "dry-run"
            return report
        if acc is not None and any(v.added and not v.accepted for v in report.verdicts):
            acc = _rebuild(accepted, plan, spec, g, config.clip_norm)
        stamp = timestamp or max(v.created_at for v in accepted if v.created_at is not None)
        _write_round(report, plan=plan, key=key, current=current, out=out, ledger=ledger, config=config,
                     strat=strat, acc=acc, stamp=stamp.astimezone(timezone.utc))
    return report


def _check_current_global(ledger: Any, this_round: int, digest: str, path: Path) -> None:
    """Refuse a current global that the ledger contradicts (rollback to another history)."""
    for entry in ledger.entries():
        if entry.get("event") == "global-written" and entry.get("round") == this_round and entry.get("sha256") != digest:
            raise StateError(f"{path}: the ledger records global {str(entry.get('sha256'))[:12]} for round "
                             f"{this_round}, this file is {digest[:12]}; refusing to aggregate from it")


def _claim_site(by_site: dict[str, list[UpdateVerdict]], verdict: UpdateVerdict, next_round: int) -> Reason | None:
    """Apply one-update-per-site within this call; a conflicting earlier update is rejected too."""
    site = verdict.site or ""
    earlier = by_site.setdefault(site, [])
    earlier.append(verdict)
    if len(earlier) == 1:
        return None
    if all(v.sha256 == verdict.sha256 for v in earlier):
        return Reason("duplicate", f"the same update from {site!r} was given twice; it is counted once")
    reason = Reason("duplicate", f"{site!r} sent {len({v.sha256 for v in earlier})} different updates for round "
                                 f"{next_round}; none is chosen")
    for v in earlier:
        if v.reason is None or v.reason.rule != "duplicate":
            v.reason = reason
    return reason


_CHUNK = 1 << 16  # elements per fused step: 512 KiB of float64 stays in cache


def _fused(x: np.ndarray, g: np.ndarray, weights: str, out: np.ndarray | None, factor: float,
           buf: np.ndarray) -> float:
    """Return the float64 sum of squares of one tensor's delta; with ``out``, add ``factor * delta`` into it.

    Chunked so the delta, its square and the scaled add happen while a chunk is in cache, with one
    reusable float64 buffer instead of tensor-sized temporaries.
    """
    xf, gf = x.reshape(-1), g.reshape(-1)
    of = out.reshape(-1) if out is not None else None
    total = 0.0
    for start in range(0, xf.size, _CHUNK):
        stop = min(start + _CHUNK, xf.size)
        b = buf[: stop - start]
        if weights == "delta":
            np.copyto(b, xf[start:stop])
        else:
            np.subtract(xf[start:stop], gf[start:stop], out=b, dtype=np.float64)
        total += float(np.einsum("i,i->", b, b))  # not np.dot: BLAS threads cost more than they save here
        if of is not None:
            b *= factor
            of[start:stop] += b
    return total


def _consume(tensors: dict[str, np.ndarray], g: dict[str, np.ndarray], verdict: UpdateVerdict, *,
             acc: WeightedMean | None, scratch: Path | None, clip_norm: float) -> float:
    """Return the update's delta norm; add it to ``acc`` (streaming) or spill it to ``scratch``."""
    buf = np.empty(_CHUNK, dtype=np.float64)
    weight = float(verdict.num_examples or 1)
    one_pass = acc is not None and clip_norm == 0
    total = 0.0
    for name, x in tensors.items():
        out = acc.running_sum(name, x.shape) if one_pass and acc is not None else None
        total += _fused(x, g[name], verdict.weights, out, weight, buf)
    norm = math.sqrt(total)
    if acc is not None and not one_pass:
        factor = weight * clip_scale(norm, clip_norm)
        for name, x in tensors.items():
            _fused(x, g[name], verdict.weights, acc.running_sum(name, x.shape), factor, buf)
    if acc is not None:
        acc.finish_model(weight)
        verdict.added = True
    if scratch is not None:
        verdict.scratch = scratch / f"{len(list(scratch.iterdir())):04d}.h5"
        _spill(tensors, verdict.scratch)
    return norm


def _rebuild(accepted: list[UpdateVerdict], plan: Plan, spec: dict[str, Any], g: dict[str, np.ndarray],
             clip_norm: float) -> WeightedMean:
    """Sum the accepted updates again from a second verified read (a rejected one had been added)."""
    from fedseg.federation.artifact import Kind, read_artifact

    acc = WeightedMean()
    for verdict in accepted:
        art = read_artifact(verdict.path, plan, kind=Kind.UPDATE, spec=spec)
        if art.digest != verdict.sha256:
            raise AggregationError(f"{verdict.path}: the file changed during aggregation "
                                   f"({str(verdict.sha256)[:12]} -> {art.digest[:12]})")
        weight = float(verdict.num_examples or 1)
        factor = weight * clip_scale(verdict.norm or 0.0, clip_norm)
        buf = np.empty(_CHUNK, dtype=np.float64)
        for name, x in art.tensors.items():
            _fused(x, g[name], verdict.weights, acc.running_sum(name, x.shape), factor, buf)
        acc.finish_model(weight)
    return acc


def _combined_delta(name: str, *, strat: Any, config: Any, acc: WeightedMean | None,
                    accepted: list[UpdateVerdict], g: np.ndarray, files: list[Any]) -> np.ndarray:
    """Return the float64 combined delta of one tensor.

    The mean comes from the running sum (which is then released); median and trimmed mean read the
    tensor from every scratch file slice by slice, so their working set is (updates x slice), not
    (updates x tensor).
    """
    if acc is not None:
        return acc.pop_mean(name)
    flat_g = g.reshape(-1)
    result = np.empty(flat_g.size, dtype=np.float64)
    scales = [clip_scale(v.norm or 0.0, config.clip_norm) for v in accepted]
    step = max(1, _CHUNK * 4 // max(1, len(accepted)))
    for start in range(0, flat_g.size, step):
        stop = min(start + step, flat_g.size)
        deltas = [_delta64(f[name][start:stop], flat_g[start:stop], v.weights) * scale
                  for f, v, scale in zip(files, accepted, scales)]
        if strat.combine is Combine.MEDIAN:
            result[start:stop] = coordinate_median(deltas, dtype=np.float64)
        else:
            result[start:stop] = coordinate_trimmed_mean(deltas, config.trim_fraction, dtype=np.float64)
    return result.reshape(g.shape)


def _write_round(report: AggregateReport, *, plan: Plan, key: PrivateKey | None, current: Any, out: Path,
                 ledger: Any, config: Any, strat: Any, acc: WeightedMean | None, stamp: datetime) -> None:
    from fedseg.federation.artifact import write_artifact
    from fedseg.workflow.server_state import open_state_writer, read_state

    if key is None:
        raise AggregationError("a coordinator key is needed to sign the next global")
    accepted = sorted(report.accepted, key=lambda v: (v.site or "", v.sha256 or ""))
    created = stamp.strftime(_TIME_FORMAT)
    expires = (stamp + timedelta(days=config.global_expiry_days)).strftime(_TIME_FORMAT)
    report.created_at, report.expires_at, report.out = created, expires, out
    manifest = {
        "kind": "global", "round": report.round, "signer": plan.coordinator.id, "parent_sha256": current.digest,
        "weights": "full", "model": config_to_dict(plan.model),
        "contributors": [{"site": v.site, "sha256": v.sha256, "num_examples": v.num_examples} for v in accepted],
        "num_examples": sum(v.num_examples or 0 for v in accepted),
        "strategy": {"name": report.strategy, "params": report.params},
        "created_at": created, "expires_at": expires,
    }
    assert report.ledger is not None
    state_path = report.ledger.parent / STATE_FILE
    stateful = bool(strat.state_slots)
    digest_box: dict[str, str] = {}
    tmp_global = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(read_state(state_path, current.round, global_sha256=current.digest,
                                                    strategy=report.strategy, slots=strat.state_slots))
            writer = (stack.enter_context(open_state_writer(state_path, report.round, keep_round=current.round,
                                                            global_sha256_of=digest_box, strategy=report.strategy))
                      if stateful else None)
            import h5py

            files = [stack.enter_context(h5py.File(v.scratch, "r")) for v in accepted] if acc is None else []
            new: dict[str, np.ndarray] = {}
            for name in list(current.tensors):
                x = current.tensors.pop(name)  # release the old global tensor by tensor as the new one grows
                delta = _combined_delta(name, strat=strat, config=config, acc=acc, accepted=accepted, g=x,
                                        files=files)
                new[name], state = strat.step(x, delta, reader.get(name), config)
                del x, delta
                if writer is not None:
                    writer.put(name, state)
            written = write_artifact(tmp_global, manifest=manifest, tensors=new, key=key, plan=plan)
            del new
            report.digest = digest_box["digest"] = written.digest
            existing = _ledger_global(ledger, report.round)
            if existing is not None and existing != written.digest:
                raise StateError(f"round {report.round} was already aggregated into global {existing[:12]} "
                                 f"(ledger {report.ledger}); this run would write {written.digest[:12]}; refusing")
            os.replace(tmp_global, out)
            fsync_dir(out.parent)
        report.server_state = state_path if stateful else None
        if existing is not None:
            report.status = "already-aggregated"
            return
        _append_ledger(ledger, report, out)
        report.status = "written"
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_global.unlink()


def _ledger_global(ledger: Any, round_: int) -> str | None:
    for entry in ledger.entries():
        if entry.get("event") == "global-written" and entry.get("round") == round_:
            return str(entry.get("sha256"))
    return None


def _append_ledger(ledger: Any, report: AggregateReport, out: Path) -> None:
    """Append update and global lines, skipping update lines an interrupted earlier run already wrote."""
    seen = {(e.get("event"), e.get("round"), e.get("site"), e.get("sha256"), e.get("path"))
            for e in ledger.entries()}
    for v in report.verdicts:
        event = "update-accepted" if v.accepted else "update-rejected"
        fields: dict[str, Any] = {"round": report.round, "site": v.site, "sha256": v.sha256, "path": str(v.path)}
        if (event, report.round, v.site, v.sha256, str(v.path)) in seen:
            continue
        if v.accepted:
            fields.update(num_examples=v.num_examples, norm=v.norm)
        else:
            fields.update(reason=str(v.reason), claimed_site=v.claimed_site)
        ledger.append(event, **fields)
    ledger.append("global-written", round=report.round, sha256=report.digest, path=str(out),
                  parent_sha256=report.parent, strategy={"name": report.strategy, "params": report.params},
                  contributors=[{"site": v.site, "sha256": v.sha256, "num_examples": v.num_examples}
                                for v in sorted(report.accepted, key=lambda v: v.site or "")])

"""Write a round's result: the next signed global (atomically), the server optimizer state, then the ledger.

Order matters for crash safety: the global is written to a temporary file and renamed into place, the
state file is replaced atomically when its block ends, and only then are ledger lines appended; a rerun
after a crash between the rename and the last ledger line rewrites the same bytes and appends only the
missing lines. A ledger that already records another global for the round is a refusal (StateError).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configtools import config_to_dict
from fedseg.errors import AggregationError, ArtifactError, StateError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.manifest import Contributor, StrategyRecord, aggregated_global_manifest, format_timestamp
from fedseg.federation.plan import Plan
from fedseg.federation.strategies import WeightedMean
from fedseg.fsutil import fsync_dir
from fedseg.workflow.coordinator.delta_stream import combined_delta
from fedseg.workflow.coordinator.fed_validation import MANIFEST_KEY
from fedseg.workflow.coordinator.round_report import AggregateReport
from fedseg.workflow.coordinator.scratch import TensorFile

__all__ = ["STATE_FILE", "check_current_global", "write_round"]

STATE_FILE = "server-state.h5"


def check_current_global(ledger: Any, this_round: int, digest: str, path: Path) -> None:
    """Refuse a current global that the ledger contradicts (rollback to another history)."""
    for entry in ledger.entries():
        if entry.get("event") == "global-written" and entry.get("round") == this_round and entry.get("sha256") != digest:
            raise StateError(f"{path}: the ledger records global {str(entry.get('sha256'))[:12]} for round "
                             f"{this_round}, this file is {digest[:12]}; refusing to aggregate from it")


def write_round(report: AggregateReport, *, plan: Plan, key: PrivateKey | None, current: Any, g: TensorFile,
                out: Path, ledger: Any, config: Any, strat: Any, acc: WeightedMean | None, stamp: datetime,
                noise: Callable[[tuple[int, ...]], np.ndarray] | None = None) -> None:
    """Combine tensor by tensor, sign and write the next global, keep the server state, append the ledger.

    ``current`` is the verified current global (manifest only), ``g`` its tensors in scratch, ``acc``
    the running sum of the mean strategies (None for median / trimmed mean, which read the updates'
    scratch files). ``noise(shape)``, under central DP, is added to each combined delta before the server
    step; ``report.privacy`` goes into the global's manifest.
    """
    from fedseg.federation.artifact import write_artifact
    from fedseg.workflow.coordinator.server_state import open_state_writer, read_state

    if key is None:
        raise AggregationError("a coordinator key is needed to sign the next global")
    accepted = sorted(report.accepted, key=lambda v: (v.site or "", v.sha256 or ""))
    manifest = aggregated_global_manifest(
        round_=report.round, signer=plan.coordinator.id, parent_sha256=current.digest,
        model=config_to_dict(plan.model),
        contributors=[Contributor(v.site, v.sha256, v.num_examples) for v in accepted],
        strategy=StrategyRecord(report.strategy, report.params), created=stamp, expiry_days=config.global_expiry_days,
        privacy=report.privacy, metrics={MANIFEST_KEY: report.validation} if report.validation else None)
    assert manifest.created_at is not None and manifest.expires_at is not None
    report.created_at, report.expires_at = format_timestamp(manifest.created_at), format_timestamp(manifest.expires_at)
    report.out = out
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
            new: dict[str, np.ndarray] = {}
            for name in g.names:  # the running sum shrinks by a tensor as the new global grows by one
                x = g.read(name)
                delta = combined_delta(name, strat=strat, config=config, acc=acc, accepted=accepted, g=x)
                if noise is not None:
                    delta = delta + noise(delta.shape)
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
            _refuse_other_global(plan, report.round, written.digest, out, state_path)
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


def _refuse_other_global(plan: Plan, round_: int, digest: str, out: Path, state_path: Path) -> None:
    """Refuse to write round ``round_`` when another global for it exists beside ``out`` or in the server state.

    The ledger alone is not enough: a truncated or deleted ledger would let a second, different round-r
    global replace the one the sites already have. Every ``*.fedseg`` file in the output folder that claims
    to be a global of this federation for this round is verified; one that verifies with another digest is
    a refusal (sites would see two histories). Files that do not verify are not globals of this plan and
    are left alone.
    """
    import h5py

    from fedseg.federation.artifact import Kind, read_artifact, read_manifest_unverified
    from fedseg.workflow.coordinator.server_state import round_group

    for path in sorted(out.parent.glob("*.fedseg")):
        try:
            claimed = read_manifest_unverified(path)
            if claimed.get("kind") != "global" or claimed.get("round") != round_:
                continue
            other = read_artifact(path, plan, kind=Kind.GLOBAL)
        except (ArtifactError, OSError):  # what does not verify is not a global of this federation
            continue
        if other.digest != digest:
            raise StateError(f"{path} is already the round-{round_} global ({other.digest[:12]}) of this federation; "
                             f"this run would write another ({digest[:12]}); refusing to fork the history")
    if state_path.exists():
        try:
            with h5py.File(state_path, "r") as f:
                group = f.get(round_group(round_))
                stored = None if group is None else group.attrs.get("global_sha256")
        except OSError as exc:
            raise StateError(f"{state_path}: the server state file cannot be read ({exc})") from None
        if stored is not None and stored != digest:
            raise StateError(f"{state_path} records global {str(stored)[:12]} for round {round_}; this run would "
                             f"write {digest[:12]}; refusing to fork the history")


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
                                for v in sorted(report.accepted, key=lambda v: v.site or "")],
                  **({"validation": report.validation} if report.validation else {}))

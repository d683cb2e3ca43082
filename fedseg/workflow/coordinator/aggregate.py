"""The coordinator's round: screen the round's signed updates and write the next signed global model.

Order of work (DESIGN.md §4.5, §5):

1. verify the current global against the plan (kind global); its verified tensors give the expected
   tensor spec (names, shapes) of every update, and are then parked in a private scratch file
   (:mod:`fedseg.workflow.coordinator.scratch`) so the global does not sit in memory while updates are read;
2. screen every update: ``read_artifact`` checks signature, signer, federation/plan binding, kind, spec
   and finiteness; then round = current + 1, parent = current digest, weights "full"/"delta", example
   count in 1..min(plan.training.max_examples, the site's enrolled cases x (1 + examples_tolerance)), model
   config = the plan's, one update per site (a site with two different updates in this call has all of
   them rejected; one whose ledger already records another accepted update for the round is rejected),
   and finally, among those left, the robust z-score of the delta norms and of each delta's cosine to the
   round's coordinate-wise median delta (the direction screen, which needs 3 updates and spills every
   delta to scratch; the report notes when it is skipped);
3. weigh them as the plan says (examples, uniform, or capped shares; uniform when the plan lacks an
   enrolled count for some site) and combine the accepted ones if at least ``min_sites`` remain (else :class:`QuorumError`, nothing
   written): mean strategies stream (each update is added to one float64 running sum while it is
   screened; if a later rule rejects an update already added, the sum is rebuilt from a second verified
   read of the accepted files); median / trimmed mean park each verified update in the scratch folder
   and then work tensor by tensor (:mod:`fedseg.workflow.coordinator.delta_stream`);
4. write the next global atomically, signed by the coordinator, with deterministic ``created_at`` (the
   latest accepted update's, or ``timestamp``) and ``expires_at``; the server optimizer state beside the
   ledger; and only then the ledger lines (:mod:`fedseg.workflow.coordinator.round_write`). Updates are processed in
   a canonical order (site, digest), so a rerun with the same inputs gives a byte-identical global; when
   the ledger already records that global, nothing is appended ("already aggregated").

Memory: every file is read into one reused buffer (one payload in memory at a time, and no fresh pages
to fault in per file); besides it, the mean strategies hold only the float64 running sum (two float32
model sizes), so peak memory is about three model sizes plus the interpreter, however many sites.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.configs.aggregation import Strategy, Weighting, check_drift_aggregation, check_privacy_aggregation
from fedseg.configtools import config_to_dict
from fedseg.errors import AggregationError, ArtifactError
from fedseg.federation import screening
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.federation.screening import Reason
from fedseg.federation.strategies import Combine, WeightedMean, get_strategy, strategy_params, update_weights
from fedseg.workflow.coordinator.central_dp import central_noise, round_privacy, update_epsilon
from fedseg.workflow.coordinator.delta_stream import consume, direction_cosines, rebuild
from fedseg.workflow.coordinator.fed_validation import best_point, curve, from_metrics, pooled, pooling
from fedseg.workflow.coordinator.round_lock import holding_round_folders, refuse_round_overlaps
from fedseg.workflow.coordinator.round_report import AggregateReport, QuorumError, UpdateVerdict
from fedseg.workflow.coordinator.round_write import check_current_global, write_round
from fedseg.workflow.coordinator.scratch import TensorFile, scratch_dir

__all__ = ["AggregateReport", "QuorumError", "UpdateVerdict", "aggregate_round", "default_ledger_path"]

log = logging.getLogger(__name__)


def default_ledger_path(out: Path) -> Path:
    """Return the default ledger path: ``ledger.jsonl`` beside the output global."""
    return Path(out).parent / "ledger.jsonl"


def _file_size(path: Path) -> int:
    """Return the size of ``path`` in bytes (0 when it cannot be read: read_artifact then says why)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _screen_manifest(art: Any, *, next_round: int, parent: str, plan: Plan, model: dict[str, Any]) -> Reason | None:
    m = art.manifest
    enrolled = plan.site(art.signer.id).cases
    return (screening.check_round(m, next_round) or screening.check_parent(m, parent)
            or screening.check_weights(m)
            or screening.check_examples(m, plan.training.max_examples, enrolled=enrolled,
                                        tolerance=plan.aggregation.examples_tolerance)
            or screening.check_model(m, model) or screening.check_created_at(m)
            or screening.check_privacy(m, plan.privacy))


def _weighting(plan: Plan, config: Any, report: AggregateReport) -> Weighting:
    """Return the round's weighting: the plan's, or uniform when example counts cannot be bound."""
    weighting = Weighting(config.weighting)
    missing = [s.id for s in plan.sites if s.cases is None]
    if weighting is not Weighting.UNIFORM and missing:
        report.notes.append(f"weighting {weighting.value} needs every site's enrolled case count in the plan; "
                            f"{', '.join(missing)} have none, so this round weighs updates uniformly")
        return Weighting.UNIFORM
    return weighting


def _screen_round(report: AggregateReport, config: Any, g: TensorFile, direction: bool) -> None:
    """Reject norm and direction outliers among the updates that passed every other rule."""
    candidates = {str(id(v)): v for v in report.verdicts if v.accepted}
    found = screening.norm_outliers({k: v.norm or 0.0 for k, v in candidates.items()}, config.outlier_z)
    if direction and len(candidates) >= screening.MIN_UPDATES_FOR_OUTLIERS:
        for v, c in zip(candidates.values(), direction_cosines(list(candidates.values()), g)):
            v.cosine = c
        cosines = {k: v.cosine or 0.0 for k, v in candidates.items()}
        for k, reason in screening.direction_outliers(cosines, config.direction_z, config.direction_floor).items():
            found.setdefault(k, reason)
    elif config.direction_z > 0:
        report.notes.append(f"direction screen skipped: {len(candidates)} update(s) passed the other checks and at "
                            f"least {screening.MIN_UPDATES_FOR_OUTLIERS} are needed to judge a direction")
    for k, reason in found.items():
        candidates[k].reason = reason


def _sort_key(path: Path) -> tuple[str, str, str]:
    """Order inputs canonically (claimed signer, digest, path) so reruns sum in the same order."""
    from fedseg.federation.artifact import read_manifest_unverified

    try:
        m = read_manifest_unverified(path)  # ordering only; every decision uses the verified manifest
        return (str(m.get("signer")), str(m.get("payload_sha256")), str(path))
    except ArtifactError:
        return ("\uffff", "", str(path))


@holding_round_folders(default_ledger_path)  # one run per folder; it removes killed runs' temp files
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

    out, global_path = Path(out), Path(global_path)
    ledger_path = Path(ledger_path) if ledger_path else default_ledger_path(out)
    refuse_round_overlaps(out, ledger_path, plan=plan.source, global_=global_path, updates=update_paths,
                          key=key.source if key is not None else None)
    check_privacy_aggregation(plan.privacy, plan.aggregation, strategy)  # refuse bad options before any read
    check_drift_aggregation(plan.training.drift_correction, plan.privacy, plan.aggregation, strategy)
    # One buffer for every payload of the round; updates share the global's tensors, so its size fits them.
    buffer: np.ndarray | None = np.empty(_file_size(global_path), dtype=np.uint8)
    current = read_artifact(global_path, plan, kind=Kind.GLOBAL, buffer=buffer)
    # The chain verified the current global; the plan version in force for the next round governs the rest.
    chain, plan = plan, plan.in_force(current.round + 1)
    if key is not None and key.key_id != plan.coordinator.key_id:
        raise AggregationError(f"--key {key.source}: key {key.key_id} is not the plan key of coordinator "
                               f"{plan.coordinator.id!r} ({plan.coordinator.key_id})")
    check_privacy_aggregation(plan.privacy, plan.aggregation, strategy)
    check_drift_aggregation(plan.training.drift_correction, plan.privacy, plan.aggregation, strategy)
    config = plan.aggregation if strategy is None else replace(plan.aggregation, strategy=Strategy(strategy))
    central = central_noise(plan, config)
    if central is not None:
        config = central.config
    strat = get_strategy(config.strategy)
    quorum = plan.aggregation.min_sites if min_sites is None else int(min_sites)
    if quorum < plan.aggregation.min_sites:
        raise AggregationError(f"--min-sites {quorum} would loosen the plan's quorum of {plan.aggregation.min_sites}; "
                               "the command line may only tighten what the plan says")
    spec = {name: TensorSpec(tuple(t.shape), "float32") for name, t in current.tensors.items()}
    this_round, next_round = current.round, current.round + 1
    if next_round > plan.total_rounds:
        raise AggregationError(f"{global_path} is the round-{this_round} global and the plan has {plan.total_rounds} "
                               f"round(s); round {next_round} is beyond the plan (extend federation.rounds first)")
    if central is not None:
        central.schedule.check_round(next_round, "coordinator (central DP)")
    model = config_to_dict(plan.model)
    ledger = Ledger(ledger_path)
    ledger.verify()
    ledger.trust_plan(chain, record=not dry_run)
    check_current_global(ledger, this_round, current.digest, global_path)
    in_ledger = {e["site"]: e["sha256"] for e in ledger.accepted_updates(next_round)}
    report = AggregateReport(round=next_round, strategy=config.strategy.value,
                             params=strategy_params(config.strategy, config), min_sites=quorum, verdicts=[],
                             ledger=ledger_path, parent=current.digest)
    mean = strat.combine is Combine.MEAN
    weighting = _weighting(plan, config, report)
    report.weighting = weighting.value
    if central is not None:
        report.notes.append("central DP: the norm and direction screens are off (clipping bounds every site's "
                            "influence; see the README)")
    # Capped shares depend on every accepted count, so the capped mean is summed after screening.
    acc = WeightedMean() if mean and not dry_run and weighting is not Weighting.CAPPED else None
    direction = config.direction_z > 0 and len(update_paths) >= screening.MIN_UPDATES_FOR_OUTLIERS

    near = out.parent.is_dir() and not dry_run  # a dry run holds no lock, so it writes nothing in the folder
    with scratch_dir(out.parent if near else None) as scratch, contextlib.ExitStack() as files:
        g = files.enter_context(TensorFile(scratch / "global.bin", current.tensors))
        current = replace(current, tensors={})  # the global's tensors now live in scratch; the buffer is free
        # The median strategies and the direction screen need every delta at once: they spill to scratch.
        spill = scratch if direction or not (mean or dry_run) else None
        by_site: dict[str, list[UpdateVerdict]] = {}
        for path in sorted((Path(p) for p in update_paths), key=_sort_key):
            verdict = UpdateVerdict(path=path)
            report.verdicts.append(verdict)
            try:
                art = read_artifact(path, plan, kind=Kind.UPDATE, spec=spec, buffer=buffer)
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
            verdict.epsilon = update_epsilon(m)
            verdict.val_score = from_metrics(art.signer.id, m.get("metrics"))
            verdict.reason = _screen_manifest(art, next_round=next_round, parent=current.digest, plan=plan,
                                              model=model)
            if verdict.reason is None and in_ledger.get(art.signer.id, art.digest) != art.digest:
                verdict.reason = Reason("duplicate", f"the ledger already holds update "
                                        f"{in_ledger[art.signer.id][:12]} from {art.signer.id!r} for round {next_round}")
            if verdict.reason is None:
                verdict.reason = _claim_site(by_site, verdict, next_round)
            if verdict.reason is None:
                verdict.created_at = screening.parse_timestamp(m.get("created_at"))
                verdict.weight = 1.0 if weighting is Weighting.UNIFORM else float(verdict.num_examples or 1)
                verdict.norm = consume(art.tensors, g, verdict, acc=acc, spill=spill, clip_norm=config.clip_norm)
                if verdict.scratch is not None:
                    files.enter_context(verdict.scratch)
            del art  # its tensors view ``buffer``, which the next read overwrites

        _screen_round(report, config, g, direction)
        accepted = report.accepted
        shares = update_weights({str(id(v)): v.num_examples or 1 for v in accepted}, weighting, config.max_share)
        for v in accepted:
            v.weight = shares[str(id(v))]
        report.validation = pooled(this_round, current.digest, [v.val_score for v in accepted if v.val_score],
                                   **pooling(plan, next_round))
        _attach_curve(report, ledger, plan)
        if len(accepted) < quorum:
            report.status = "below-quorum"
            rejected = "; ".join(f"{v.site or v.claimed_site or v.path.name}: {v.reason.detail}"
                                 for v in report.verdicts if v.reason is not None)
            raise QuorumError(f"round {next_round}: {len(accepted)} acceptable update(s), the quorum is {quorum}; "
                              f"nothing was written (rejected: {rejected or 'none'})", report)
        report.privacy = round_privacy(plan, report, central)
        if dry_run:
            report.status = "dry-run"
            return report
        if mean and (acc is None or any(v.added and not v.accepted for v in report.verdicts)):
            acc = None  # release a spoiled sum before the second one is built
            acc = rebuild(accepted, plan, spec, g, config.clip_norm, buffer)
        buffer = None  # no more reads: free the payload buffer before the new global is built
        stamp = timestamp or max(v.created_at for v in accepted if v.created_at is not None)
        write_round(report, plan=plan, key=key, current=current, g=g, out=out, ledger=ledger, config=config,
                    strat=strat, acc=acc, stamp=stamp.astimezone(timezone.utc),
                    noise=central.sampler(len(accepted)) if central is not None else None)
    _attach_curve(report, ledger, plan)
    return report


def _attach_curve(report: AggregateReport, ledger: Any, plan: Plan) -> None:
    """Set the report's curve (the ledger's points and this round's) and its best point."""
    report.curve = curve(ledger.entries(), report.validation)
    report.best = best_point(report.curve, plan.aggregation.early_stop_min_delta)


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

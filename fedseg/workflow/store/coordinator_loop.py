"""`fedseg coordinator run`: the coordinator's unattended rounds over a store.

1. Write the round-0 global (seeded by the plan's training seed) into the work folder unless it is
   there, and publish it.
2. For each round: wait until every site's update is on the store, or the plan's
   ``aggregation.round_deadline`` (seconds after the previous global was published; 0 = no deadline)
   has passed with at least ``min_sites`` updates; then *freeze* the round (download the updates into
   the work folder and write ``closed.json``), screen and aggregate them with
   :func:`fedseg.workflow.coordinator.aggregate.aggregate_round` exactly as ``fedseg aggregate`` does (the ledger and
   server state live in the work folder), upload the round's ``report.json`` and publish the new global.
3. An update that arrives for a round already closed is recorded as late (ledger event ``update-late``
   and the round's report) and never used.
4. The run ends after the plan's last round, once the sites have scored its global, or early when the
   federated validation has plateaued (``aggregation.early_stop_patience``); the coordinator then publishes
   the signed ``final/result.json`` naming the best round's global (:mod:`fedseg.workflow.store.final`).
   The last round is never an early stop (its global is published and scored), and a restart after the
   end publishes the same result again.
5. Plan updates: every turn reads the plan folder again and publishes new signed versions on the store
   (:mod:`fedseg.workflow.store.plan_sync`) before the next global; each round waits for the sites of
   the plan version in force for it, and is aggregated under that version.

Work folder (local, private to the coordinator)::

    globals/global-rNNNN.fedseg      every global written (the published bytes)
    ledger.jsonl, server-state.h5    as `fedseg aggregate` keeps them
    rounds/rNNNN/opened.json         when the global the round answers was published (for the deadline)
    rounds/rNNNN/updates/<site>.fedseg, closed.json, report.json   the frozen round and its report
    result.json                      the signed result, once the run has ended

Crash safety: a frozen round is aggregated from exactly its frozen files, and aggregation is
deterministic (a rerun writes byte-identical bytes and appends only missing ledger lines), so a restart
at any point publishes the same global. Publishing is "create if absent": a store that already holds
other bytes for a round means another coordinator (or another work folder) published it, and this one
stops with a StoreError rather than fork the federation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.errors import FedsegError, StoreError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.fsutil import atomic_write_json
from fedseg.workflow.initial import global_filename, write_initial_global
from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.layout import global_key, parse_update_name, report_key, update_key, updates_folder
from fedseg.workflow.store.member_status import record_error
from fedseg.workflow.store.plan_sync import check_not_retroactive, publish_plans, reload_plan
from fedseg.workflow.store.publish import PublishConflict, create_or_same

__all__ = ["CoordinatorRun", "PublishConflict", "run_coordinator"]

log = logging.getLogger(__name__)

LATE_EVENT = "update-late"


@dataclass
class CoordinatorRun:
    """What :func:`run_coordinator` did."""

    published: list[int] = field(default_factory=list)
    late: list[tuple[int, str]] = field(default_factory=list)
    final_round: int = 0  # the last global published
    result: dict[str, Any] | None = None  # the signed result it published (fedseg.workflow.store.final)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class _Coordinator:
    plan: Plan
    key: PrivateKey
    store: Store
    work: Path
    clock: Callable[[], float]
    result: CoordinatorRun
    published_plans: set[int] = field(default_factory=set)

    @property
    def ledger_path(self) -> Path:
        return self.work / "ledger.jsonl"

    def accepted_plan_version(self) -> int:
        from fedseg.federation.ledger import Ledger

        accepted = Ledger(self.ledger_path).accepted_plan()
        return 1 if accepted is None else int(accepted["version"])

    def global_path(self, round_: int) -> Path:
        return self.work / "globals" / global_filename(round_)

    def round_dir(self, round_: int) -> Path:
        return self.work / "rounds" / f"r{round_:04d}"

    def current_round(self) -> int:
        from fedseg.federation.ledger import Ledger

        last = Ledger(self.ledger_path).last_global()
        return 0 if last is None else int(last["round"])

    def publish(self, round_: int) -> None:
        """Publish the local global of ``round_`` unless the store holds the same bytes; StoreError if other.

        Checked once per run: a round this loop has published (or found identical) is not fetched again on
        every poll (that cost a download of the global per poll, see scripts/bench_store_scale.py).
        """
        if round_ in self.result.published:
            return
        if self.create_or_same(global_key(round_), self.global_path(round_), f"global for round {round_}"):
            log.info("published the global of round %d to %s", round_, self.store.url)
        opened = self.round_dir(round_ + 1) / "opened.json"
        if not opened.exists():
            atomic_write_json(opened, {"published_at": self.clock()})
        self.result.published.append(round_)

    def create_or_same(self, key: str, path: Path, what: str) -> bool:
        """Create ``key`` from ``path`` unless the store holds the same bytes (False); PublishConflict if other."""
        return create_or_same(self.store, key, path, what)

    def answered(self, round_: int) -> list[str]:
        sites = {s.id for s in self.plan.in_force(round_).sites}  # the members of the round's plan version
        names = (parse_update_name(n) for n in self.store.list(updates_folder(round_)))
        return sorted(s for s in names if s in sites)

    def try_close(self, round_: int) -> list[Path] | None:
        """Freeze round ``round_`` when it may close; return its update files, or None to keep waiting."""
        closed = self.round_dir(round_) / "closed.json"
        if closed.exists():
            return [self.round_dir(round_) / "updates" / f"{s}.fedseg"
                    for s in json.loads(closed.read_text())["sites"]]
        answered = self.answered(round_)
        governing = self.plan.in_force(round_)
        everyone = len(answered) == len(governing.sites)
        deadline = governing.aggregation.round_deadline
        opened = json.loads((self.round_dir(round_) / "opened.json").read_text())["published_at"]
        overdue = deadline > 0 and self.clock() - float(opened) >= deadline
        if not (everyone or (overdue and len(answered) >= governing.aggregation.min_sites)):
            return None
        limit = 2 * self.global_path(round_ - 1).stat().st_size + 2**20  # an update is at most a global's size
        files = []
        for site in answered:
            local = self.round_dir(round_) / "updates" / f"{site}.fedseg"
            if self.store.get(update_key(round_, site), local, max_bytes=limit):
                files.append(local)
        if not files:
            return None
        atomic_write_json(closed, {"sites": sorted(p.stem for p in files), "closed_at": self.clock()})
        log.info("round %d closed with %d of %d site(s)", round_, len(files), len(governing.sites))
        return files

    def aggregate(self, round_: int, files: list[Path]) -> None:
        """Aggregate the frozen round exactly as `fedseg aggregate` would; write and upload its report."""
        from fedseg.workflow.coordinator.aggregate import aggregate_round

        report = aggregate_round(plan=self.plan, global_path=self.global_path(round_ - 1), key=self.key,
                                 update_paths=files, out=self.global_path(round_), ledger_path=self.ledger_path)
        body = report.to_dict()
        for entry in body["updates"]:
            entry["file"] = Path(entry["file"]).name
        body.update(out=global_key(round_), ledger=None, server_state=None, late=[])
        atomic_write_json(self.round_dir(round_) / "report.json", body)
        self.store.put(report_key(round_), self.round_dir(round_) / "report.json")

    def record_late(self, round_: int) -> None:
        """Record updates that reached closed round ``round_`` after it closed (never used)."""
        from fedseg.federation.ledger import Ledger

        closed, report = self.round_dir(round_) / "closed.json", self.round_dir(round_) / "report.json"
        if round_ < 1 or not closed.exists() or not report.exists():
            return
        body = json.loads(report.read_text())
        known = set(json.loads(closed.read_text())["sites"]) | set(body["late"])
        new = [s for s in self.answered(round_) if s not in known]
        if not new:
            return
        for site in new:
            Ledger(self.ledger_path).append(LATE_EVENT, round=round_, site=site)
            self.result.late.append((round_, site))
            log.warning("late update from %s for round %d, which is closed; recorded, not used", site, round_)
        body["late"] = sorted(set(body["late"]) | set(new))
        atomic_write_json(report, body)
        self.store.put(report_key(round_), report)


def run_coordinator(plan: Plan, *, key: PrivateKey, store: Store, work: Path, poll: float = 10.0,
                    clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                    max_idle_polls: int | None = None) -> CoordinatorRun:
    """Run the federation's rounds on ``store`` until it ends, then publish its signed result.

    It ends after the plan's last global, once the sites scored it, or early on a validation plateau
    (:mod:`fedseg.workflow.store.final`).

    A round below quorum after screening is reported (left on the store as the coordinator's last
    error) and waits for more updates. Store errors that outlast the retries are logged and retried
    after ``poll`` seconds, except a conflicting publication, which stops the loop.
    ``max_idle_polls`` bounds the waiting (tests).
    """
    from fedseg.workflow.coordinator.aggregate import QuorumError
    from fedseg.workflow.store.coordinator_end import ended, finish, last_global_scored, plateau

    work = Path(work)
    me = plan.coordinator.id
    co = _Coordinator(plan, key, store, work, clock, CoordinatorRun())
    if not co.global_path(0).exists():
        write_initial_global(plan, key, co.global_path(0).parent, seed=plan.training.seed)
    idle, failed_with = 0, None
    while True:
        try:
            r = co.current_round()
            co.plan = reload_plan(co.plan)  # a version `fedseg plan update` added beside plan.toml
            done = ended(co)
            if done is not None:  # a restart after the end: publish the same result again
                co.result.final_round, co.result.result = done[0], finish(co, *done)
                return co.result
            check_not_retroactive(co.plan, co.accepted_plan_version(), r)
            publish_plans(store, co.plan, co.published_plans)  # before the global that opens its rounds
            if r >= 1 and not (co.round_dir(r) / "report.json").exists():
                co.aggregate(r, co.try_close(r) or [])  # crashed between the global and its report
            if r < co.plan.rounds and plateau(co):  # early stop: the result replaces global r, left unpublished
                co.result.final_round, co.result.result = r - 1, finish(co, r - 1, "plateau")
                return co.result
            co.publish(r)
            co.record_late(r)
            if r >= co.plan.rounds:
                if last_global_scored(co, r):
                    co.result.final_round, co.result.result = r, finish(co, r, "last-round")
                    return co.result
                files = None
            else:
                files = co.try_close(r + 1)
            fingerprint = None if files is None else [(p.name, _sha256(p)) for p in files]
            if files is not None and failed_with != fingerprint:
                try:
                    co.aggregate(r + 1, files)
                    idle, failed_with = 0, None
                    continue
                except QuorumError as exc:
                    failed_with = fingerprint
                    (co.round_dir(r + 1) / "closed.json").unlink()  # wait for more (or fixed) updates
                    log.warning("%s", exc)
                    record_error(store, me, r + 1, exc)
        except PublishConflict as exc:
            record_error(store, me, None, exc)
            raise
        except StoreError as exc:
            log.warning("%s", exc)
            record_error(store, me, None, exc)
        except FedsegError as exc:
            record_error(store, me, None, exc)
            raise
        idle += 1
        if max_idle_polls is not None and idle > max_idle_polls:
            raise StoreError(f"{store.url}: no round closed after {max_idle_polls} polls of {poll} s")
        sleep(poll)

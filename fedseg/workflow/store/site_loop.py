"""`fedseg site run`: a site's unattended rounds over a store.

Each turn: find the next global the site may accept (its :class:`~fedseg.federation.state.SiteState`
allows only the next round, or the same file again), download it to the work folder, verify it as
``train-local`` does, train on it (resuming an interrupted run from its checkpoint folder), and upload
the signed update to ``rounds/rNNNN/updates/<site>.fedseg``; then wait for the next global. After the
plan's last global it uploads its signed validation score of that global; it stops once the coordinator's
signed result is on the store (after the last round, or earlier on a validation plateau) and it has scored
the result's global on its test split (:mod:`fedseg.workflow.store.final`). ``once`` does at most one
round and returns.

Work folder (local, private to the site)::

    globals/global-rNNNN.fedseg      downloaded globals (verified before use)
    updates/update-rNNNN.fedseg      signed updates, with their checkpoint folders (.ckpt/)
    updates/update-rNNNN.uploaded    written once the store holds the update
    plans/plan-vNNNN.toml            plan updates fetched from the store (verified from the site's plan)

Plan updates: each turn first fetches new plan versions from the store and verifies them from the plan
the site trusts (:mod:`fedseg.workflow.store.plan_sync`); the site trains a round only when its key is a
site key of the version in force for that round (a site that joins at round R trains from R on; until
then, or after it left, it follows the globals without training). A rotated key means restarting the
loop with the new key: the old one stops with a PlanError saying so once it would sign a round of the
rotation on.

The site state (last accepted global) is the site's one state for the federation, kept with its data
(``DATA/.fedseg/state-<federation-id>.json``) and shared with ``fedseg train-local``.

Crash safety: every step is repeatable. A kill during training resumes from the checkpoint; a kill after
the export re-exports the finished checkpoint; a kill after the upload finds the marker or re-uploads
the same update (an atomic replace). A round whose global the coordinator has already published
without this site is skipped (the update, if any, arrives late and is recorded as late). A site with no
state yet joins at the newest global on the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.errors import BindingError, FedsegError, PlanError, StoreError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.workflow.initial import global_filename
from fedseg.workflow.site.received import read_global, site_in_chain
from fedseg.workflow.site.train import train_local
from fedseg.workflow.store.backend import Store
from fedseg.workflow.store.layout import global_key, update_key
from fedseg.workflow.store.member_status import record_error
from fedseg.workflow.store.plan_sync import fetch_plans

__all__ = ["SiteRun", "run_site"]

log = logging.getLogger(__name__)

MAX_GLOBAL_BYTES = 8 * 2**30  # a download cap for an untrusted store; read_artifact checks the rest


@dataclass
class SiteRun:
    """What :func:`run_site` did."""

    site: str
    trained: list[int] = field(default_factory=list)  # rounds whose update this call uploaded
    finished: bool = False  # the federation ended and this site scored its result on its test split
    last_global: int | None = None
    test_score: dict[str, Any] | None = None  # the site-level test score of the result's global


@dataclass
class _Site:
    plan: Plan
    key: PrivateKey
    store: Store
    work: Path
    data: Path
    device: str
    site: str
    state_path: Path | None = None
    test_score: dict[str, Any] | None = None

    @property
    def state_file(self) -> Path:
        from fedseg.federation.state import default_state_path

        # the site's one state per federation, kept with its data: shared with train-local whatever --out
        return self.state_path or default_state_path(self.data, self.plan.federation_id)

    @property
    def state(self) -> Any:
        from fedseg.federation.state import SiteState

        return SiteState(self.state_file)

    def global_path(self, round_: int) -> Path:
        return self.work / "globals" / global_filename(round_)

    def update_path(self, round_: int) -> Path:
        return self.work / "updates" / f"update-r{round_:04d}.fedseg"

    def fetch_global(self, round_: int) -> Path | None:
        """Download and verify the global of ``round_``; None while the store does not have it."""
        path = self.global_path(round_)
        if not self.store.get(global_key(round_), path, max_bytes=MAX_GLOBAL_BYTES):
            return None
        art = read_global(self.plan, path)
        if art.round != round_:
            raise BindingError(f"{self.store.url}/{global_key(round_)}: the file holds the global of round "
                               f"{art.round}, expected round {round_}")
        return path

    def member_at(self, round_: int) -> bool:
        """Return whether this site's key is a site key of the plan version in force for ``round_``.

        PlanError when the site is one under another key (its key was rotated out): waiting would stall
        a federation that waits for this site.
        """
        from fedseg.workflow.store.site_end import is_site_at

        if is_site_at(self.plan, self.key.key_id, round_):
            return True
        if any(s.id == self.site for s in self.plan.in_force(round_).sites):
            mine = max((v.version for v in self.plan.versions if self.key.key_id in {s.key_id for s in v.sites}),
                       default=0)
            since = next(v.from_round for v in self.plan.versions if v.version > mine)
            raise PlanError(f"{self.key.source}: the key {self.key.key_id} of site {self.site!r} was rotated out "
                            f"from round {since}; restart `fedseg site run` with the new key")
        return False

    def accept_only(self, path: Path) -> Any:
        """Accept a verified global without training on it (the last round, or not a member of the next)."""
        art = read_global(self.plan, path)
        self.state.accept_global(self.plan.federation_id, art.round, art.digest, plan=self.plan)
        return art

    def train_and_upload(self, global_round: int) -> None:
        """Train on the (verified, local) global of ``global_round`` and upload the update of the next round."""
        round_ = global_round + 1
        out = self.update_path(round_)
        log.info("%s: training round %d on global %d", self.site, round_, global_round)
        # The received global's score is the site's federated validation; nobody reads the local model's.
        train_local(self.plan, self.global_path(global_round), self.data, self.key, out, resume=True,
                    checkpoint_dir=out.with_name(out.name + ".ckpt"), device=self.device, state_path=self.state_file,
                    validate_after=False)
        self.store.put(update_key(round_, self.site), out)
        out.with_suffix(".uploaded").write_text("uploaded\n")
        log.info("%s: uploaded its update for round %d to %s", self.site, round_, self.store.url)

    max_global_bytes = MAX_GLOBAL_BYTES

    def step(self) -> str:
        """Do the next piece of work; return "trained", "waiting" or "finished"."""
        import tempfile

        from fedseg.workflow.store.final import read_result
        from fedseg.workflow.store.site_end import report_last_validation, score_result

        self.plan = fetch_plans(self.store, self.plan, self.work / "plans")
        self.state.check_plan(self.plan)
        with tempfile.TemporaryDirectory(prefix="fedseg-result-") as tmp:
            result = read_result(self.plan, self.store, Path(tmp) / "result.json")
        if result is not None:  # the federation ended: score its result on the test split
            self.test_score = score_result(self, result)
            return "finished"
        last = self.state.last(self.plan.federation_id)
        if last is not None and last["round"] >= self.plan.rounds:
            if self.member_at(self.plan.rounds):
                report_last_validation(self, last)
            return "waiting"
        if last is None:  # first contact (trust on first use): join at the newest published global
            target = 0
            while target < self.plan.rounds and self.store.exists(global_key(target + 1)):
                target += 1
        else:
            current, next_round = int(last["round"]), int(last["round"]) + 1
            if not self.store.exists(global_key(next_round)):
                if self.update_path(next_round).with_suffix(".uploaded").exists() or not self.member_at(next_round):
                    return "waiting"
                if not self.global_path(current).exists() and self.fetch_global(current) is None:
                    raise StoreError(f"{self.store.url}/{global_key(current)}: the global this site accepted "
                                     "is gone from the store and from its work folder")
                self.train_and_upload(current)
                return "trained"
            target = next_round  # the round closed (with or without this site): move on to its global
        path = self.fetch_global(target)
        if path is None:
            return "waiting"
        if target >= self.plan.rounds:
            art = self.accept_only(path)
            log.info("%s: accepted the final global (round %d)", self.site, target)
            if self.member_at(self.plan.rounds):  # a site that left has no score to give
                report_last_validation(self, {"round": art.round, "sha256": art.digest})
            return "waiting"
        if not self.member_at(target + 1):  # joins later, or left: follow the globals without training
            if last is None:
                return "waiting"
            self.accept_only(path)
            return "waiting"
        self.train_and_upload(target)
        return "trained"


def run_site(plan: Plan, *, data: Path, key: PrivateKey, store: Store, work: Path, once: bool = False,
             poll: float = 10.0, device: str = "auto", sleep: Callable[[float], None] = time.sleep,
             max_idle_polls: int | None = None, state_path: Path | None = None) -> SiteRun:
    """Run this site's rounds from ``store`` until the federation's result is scored (or one round with ``once``).

    Store errors that outlast the retries are logged, left on the store as the site's last error and
    retried after ``poll`` seconds; any other error (a global that does not verify, a dataset that does
    not match the plan) is left on the store and raised. ``max_idle_polls`` bounds the waiting (tests).
    ``state_path`` overrides the site state (default ``DATA/.fedseg/state-<federation-id>.json``).
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    plan = fetch_plans(store, plan, work / "plans")  # a site that joins later is listed only in an update
    site = site_in_chain(plan, key).id
    runner = _Site(plan, key, store, work, Path(data), device, site, Path(state_path) if state_path else None)
    result = SiteRun(site=site)
    idle = 0
    while True:
        try:
            outcome = runner.step()
        except StoreError as exc:
            log.warning("%s: %s", site, exc)
            record_error(store, site, None, exc)
            if once:
                raise
            outcome = "waiting"
        except FedsegError as exc:
            record_error(store, site, None, exc)
            raise
        last = runner.state.last(plan.federation_id)
        result.last_global = None if last is None else int(last["round"])
        if outcome == "finished":
            result.finished, result.test_score = True, runner.test_score
            return result
        if outcome == "trained":
            assert result.last_global is not None
            result.trained.append(result.last_global + 1)
            idle = 0
            if once:
                return result
            continue
        if once:
            return result
        idle += 1
        if max_idle_polls is not None and idle > max_idle_polls:
            raise StoreError(f"{store.url}: nothing new after {max_idle_polls} polls of {poll} s")
        sleep(poll)

"""Train each simulated mode round by round until its :class:`~.protocol.StopRule` says stop.

* ``fl``    federated averaging through the real path: each site trains the signed global with
            :func:`~fedseg.workflow.site.train.train_local` (signed update, site state), the coordinator screens and
            aggregates with :func:`~fedseg.workflow.coordinator.aggregate.aggregate_round` (signed global, ledger);
* ``cds``   centralized data sharing: one model trained on the pooled training cases of every site;
* ``iil``   institutional incremental learning: the model visits the sites one after another, once;
* ``ciil``  cyclic IIL: the model cycles through the sites, ``steps`` per visit, once per round;
* ``local`` each site trains alone; each model is scored on every site (the point is the mean over models).

Per round every mode spends ``steps`` optimizer steps per site. Each round's weights are kept (FL: the signed
global; others: ``MODE/weights-rNNNN.h5``) and its validation point saved to ``MODE/curve.json``, so an
interrupted simulation resumes and any round's model can be scored on the test split afterwards.
"""

from __future__ import annotations

import enum
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.device import resolve_device
from fedseg.federation.plan import Plan
from fedseg.fsutil import atomic_write_json
from fedseg.workflow.simulate.protocol import Budget, StopRule
from fedseg.workflow.simulate.scoring import evaluate_weights, mean_of_models
from fedseg.workflow.simulate.sites import Site

__all__ = ["Mode", "Runner", "train_mode", "weights_at"]

Weights = dict[str, np.ndarray]


class Mode(str, enum.Enum):
    FL = "fl"
    CDS = "cds"
    IIL = "iil"
    CIIL = "ciil"
    LOCAL = "local"


@dataclass
class Runner:
    """Shared state of one simulation: plan, sites, keys, output folder, stop rule and indexed training cases."""

    plan: Plan
    sites: list[Site]
    keys: dict[str, Any]
    out: Path
    split: str
    device: str
    seed: int
    steps: int
    stop: StopRule
    say: Callable[[str], None]

    def __post_init__(self) -> None:
        self._train_cases: dict[int, list[Any]] = {}

    def train_cases(self, i: int) -> list[Any]:
        """Return site ``i``'s training cases, indexed once (each index reads every label of the split)."""
        if i not in self._train_cases:
            from fedseg.data.dataset import load_dataset
            from fedseg.train.sampling import index_case

            dataset = load_dataset(self.sites[i].root)
            self._train_cases[i] = [index_case(dataset.reader(c), np.random.default_rng([self.seed, i, n]))
                                    for n, c in enumerate(dataset.split("train"))]
        return self._train_cases[i]

    def evaluate(self, weights: Weights, split: str | None = None, sites: Sequence[Site] | None = None) -> dict:
        return evaluate_weights(self.plan, weights, self.sites if sites is None else sites, split or self.split,
                                self.device, per_case=split is not None)

    def initial_weights(self) -> Weights:
        from fedseg.workflow.initial import global_filename
        from fedseg.workflow.site.received import read_global

        return {k: np.asarray(v, np.float32)
                for k, v in read_global(self.plan, self.out / "fl" / global_filename(0)).tensors.items()}


def _stable_salt(*parts: object) -> int:
    """Return a salt that is the same in every process (``hash`` of a str is randomized per process)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def _schedule_iil(n_sites: int, rounds: int, steps: int, r: int) -> list[tuple[tuple[int, ...], int]]:
    """Return round ``r``'s segments of fixed-budget IIL: site i owns steps [i*R*S, (i+1)*R*S) of the run."""
    per_site, per_round = rounds * steps, n_sites * steps
    start, end, segments = (r - 1) * per_round, r * per_round, []
    while start < end:
        site = start // per_site
        stop = min(end, (site + 1) * per_site)
        segments.append(((site,), stop - start))
        start = stop
    return segments


def _train_segments(run: Runner, weights: Weights, segments: Sequence[tuple[tuple[int, ...], int]],
                    salt: int, *, r: int, folder: Path) -> Weights:
    """Train round ``r``'s segments one after another.

    Under ``training.lr_scope = "round"`` each segment (a site's visit) runs the whole learning-rate curve,
    as each FL site's round does; under ``"federation"`` the round's share of the one curve is split between
    its segments by their steps. With ``training.keep_optimizer_state`` the optimizer's moments go on from
    segment to segment and from round to round (``folder/optimizer-rNNNN.h5``), as one trainer keeps them;
    otherwise each segment starts afresh.
    """
    from fedseg.configs.training import LrScope
    from fedseg.model.spec import build_model, state_to_numpy
    from fedseg.train import checkpoint as ckpt
    from fedseg.train.loop import make_optimizer, round_window, train

    model = build_model(run.plan.model, weights)
    keep = run.plan.training.keep_optimizer_state
    start, end = round_window(run.plan.training, r, run.stop.rounds)
    kept_file = folder / f"optimizer-r{r - 1:04d}.h5"
    state = None
    if keep and kept_file.exists():
        state = ckpt.optimizer_from_h5(kept_file, make_optimizer(model, run.plan.training).state_dict()["param_groups"])
    total, done = sum(steps for _, steps in segments), 0
    for k, (site_idx, steps) in enumerate(segments):
        cases = [case for i in site_idx for case in run.train_cases(i)]
        config = replace(run.plan.training, seed=int(np.random.default_rng([run.seed, salt, k]).integers(2**31)))
        window = ((0.0, 1.0) if LrScope(run.plan.training.lr_scope) is LrScope.ROUND
                  else (start + (end - start) * done / total, start + (end - start) * (done + steps) / total))
        outcome = train(model, cases, config, total_steps=steps, device=resolve_device(run.device),
                        optimizer_state=state if keep else None, schedule_window=window)
        state, done = outcome.optimizer_state, done + steps
    if keep and state is not None:
        ckpt.write_optimizer(folder / f"optimizer-r{r:04d}.h5", state)
    return state_to_numpy(model.state_dict())


def weights_at(run: Runner, mode: Mode, r: int) -> list[Weights]:
    """Return the model(s) of ``mode`` after round ``r`` (``local``: one per site; round 0: the initial one)."""
    from fedseg.train.checkpoint import read_tensors
    from fedseg.workflow.initial import global_filename
    from fedseg.workflow.site.received import read_global

    if r == 0:
        return [run.initial_weights()] * (len(run.sites) if mode is Mode.LOCAL else 1)
    if mode is Mode.FL:
        art = read_global(run.plan, run.out / "fl" / global_filename(r))
        return [{k: np.asarray(v, np.float32) for k, v in art.tensors.items()}]
    folders = [run.out / "local" / s.id for s in run.sites] if mode is Mode.LOCAL else [run.out / mode.value]
    return [read_tensors(f / f"weights-r{r:04d}.h5")[0] for f in folders]


def _fl_round(run: Runner, r: int, curve: list[dict[str, Any]]) -> Weights:
    """Run FL round ``r``: each site trains the global; the global is scored once, by the simulation.

    A site's score of the global it received is the curve's (not redone; under ``--split test`` the curve
    scores the test cases, so each site scores its validation cases itself: its signed update says what it
    measured on which cases), and its trained local model is not scored at all: nothing in the simulation
    reads that figure.
    """
    from fedseg.workflow.coordinator.aggregate import aggregate_round
    from fedseg.workflow.initial import global_filename
    from fedseg.workflow.site.train import train_local

    fl = run.out / "fl"
    current, nxt = fl / global_filename(r - 1), fl / global_filename(r)
    if not nxt.exists():
        updates = []
        for site in run.sites:
            update = fl / "updates" / f"r{r:04d}" / f"{site.id}.fedseg"
            if not update.exists():
                run.say(f"fl round {r}: {site.id} trains {run.steps} steps")
                ckpt = update.with_name(update.name + ".ckpt")
                train_local(run.plan, current, site.root, run.keys[site.id], update, steps=run.steps,
                            device=run.device, resume=ckpt.exists(), state_path=fl / "state" / f"{site.id}.json",
                            checkpoint_dir=ckpt, validate_after=False,
                            val_dice_before=curve[r - 1].get("sites", {}).get(site.id, {}).get("dice")
                            if run.split == "val" else None)
            updates.append(update)
        run.say(f"fl round {r}: coordinator aggregates {len(updates)} updates")
        aggregate_round(plan=run.plan, global_path=current, key=run.keys["coordinator"], update_paths=updates,
                        out=nxt, ledger_path=fl / "ledger.jsonl")
    return weights_at(run, Mode.FL, r)[0]


def _saved_or_trained(run: Runner, folder: Path, r: int, train: Callable[[], Weights]) -> Weights:
    from fedseg.train.checkpoint import read_tensors, write_tensors

    path = folder / f"weights-r{r:04d}.h5"
    if path.exists():
        return read_tensors(path)[0]
    weights = train()
    write_tensors(path, weights)
    return weights


def _round(run: Runner, mode: Mode, r: int, curve: list[dict[str, Any]]) -> dict[str, Any]:
    """Train round ``r`` of ``mode`` (or reuse its saved weights) and return its validation point."""
    n, steps = len(run.sites), run.steps
    if mode is Mode.FL:
        return dict(run.evaluate(_fl_round(run, r, curve)), round=r)
    if mode is Mode.LOCAL:
        points = []
        for i, (site, prev) in enumerate(zip(run.sites, weights_at(run, mode, r - 1))):
            run.say(f"local round {r}: {site.id} trains {steps} steps alone")
            folder = run.out / "local" / site.id
            w = _saved_or_trained(run, folder, r, lambda p=prev, i=i, f=folder: _train_segments(
                run, p, [((i,), steps)], _stable_salt("local", i, r), r=r, folder=f))
            points.append(run.evaluate(w))
        return dict(mean_of_models(points), round=r, models={s.id: p for s, p in zip(run.sites, points)})
    extra: dict[str, Any] = {}
    if mode is Mode.CDS:
        segments = [(tuple(range(n)), n * steps)]
    elif mode is Mode.CIIL:
        segments = [((i,), steps) for i in range(n)]
    elif run.stop.budget is Budget.CONVERGED:  # IIL: one site per visit, until its plateau
        visit = run.stop.next_visit(curve, n)
        assert visit is not None  # the caller stops at the last visit's end
        segments, extra = [((visit,), n * steps)], {"visit": visit}
    else:
        segments = _schedule_iil(n, run.stop.rounds, steps, r)
    who = ", ".join(f"{'+'.join(run.sites[i].id for i in s)}×{k}" for s, k in segments)
    run.say(f"{mode.value} round {r}: trains {who} steps")
    prev = weights_at(run, mode, r - 1)[0]
    w = _saved_or_trained(run, run.out / mode.value, r,
                          lambda: _train_segments(run, prev, segments, _stable_salt(mode.value, r), r=r,
                                                  folder=run.out / mode.value))
    return dict(run.evaluate(w), round=r, **extra)


def _done(run: Runner, mode: Mode, curve: list[dict[str, Any]]) -> bool:
    if mode is Mode.IIL and run.stop.budget is Budget.CONVERGED:
        return len(curve) - 1 >= run.stop.rounds or run.stop.next_visit(curve, len(run.sites)) is None
    return run.stop.done(curve)


def train_mode(run: Runner, mode: Mode, initial: dict[str, Any]) -> list[dict[str, Any]]:
    """Train ``mode`` until its stop rule holds; return its validation curve (round 0 = the shared model)."""
    path = run.out / mode.value / "curve.json"
    curve = json.loads(path.read_text("utf-8")) if path.exists() else [dict(initial, round=0)]
    while not _done(run, mode, curve):
        curve.append(_round(run, mode, len(curve), curve))
        atomic_write_json(path, curve)
    return curve

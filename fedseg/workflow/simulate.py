"""Simulate a federation and its alternatives on one machine.

Reproduces the comparison of Sheller et al., "Federated learning in medicine: facilitating multi-institutional
collaborations without sharing patient data", Scientific Reports 10, 12598 (2020):

* ``fl``    federated averaging through the real path: each site trains the signed global with
            :func:`~fedseg.workflow.site.train.train_local` (signed update, site state), the coordinator screens and
            aggregates with :func:`~fedseg.workflow.coordinator.aggregate.aggregate_round` (signed global, ledger);
* ``cds``   centralized data sharing: one model trained on the pooled training cases of every site;
* ``iil``   institutional incremental learning: the model visits the sites one after another, once;
* ``ciil``  cyclic IIL: the model cycles through the sites, ``steps`` per visit, once per round;
* ``local`` each site trains alone; its model is scored on every site (the curve is the mean over sites).

Every mode starts from the same round-0 weights and spends the same training budget: per round, ``steps``
optimizer steps per site (``local``: each site model gets its own ``steps`` per round). After each round the
model is scored on every site's ``split`` (pooled over cases: mean Dice per region). Each finished round is
saved (weights + numbers), so an interrupted simulation resumes where it stopped.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.device import resolve_device
from fedseg.errors import ConfigError, DatasetError
from fedseg.federation.plan import Plan
from fedseg.fsutil import atomic_write_json
from fedseg.labels import REGIONS

__all__ = ["Mode", "SimulationResult", "evaluate_weights", "simulate"]

log = logging.getLogger(__name__)

RESULTS_FILE = "simulation.json"
PLOT_FILE = "simulation.png"


class Mode(str, enum.Enum):
    FL = "fl"
    CDS = "cds"
    IIL = "iil"
    CIIL = "ciil"
    LOCAL = "local"


@dataclass(frozen=True)
class Site:
    id: str
    root: Path


def _enrolled(site: Site) -> int:
    """Return the site's training-case count: its enrolled cases in the simulation's plan."""
    from fedseg.data.dataset import load_dataset

    return max(1, len(load_dataset(site.root).split("train")))


@dataclass
class SimulationResult:
    """Per mode, one point per round (round 0 = the shared initial model): pooled and per-site Dice."""

    config: dict[str, Any]
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    json_path: Path | None = None
    plot_path: Path | None = None

    def final(self, mode: str) -> dict[str, float]:
        """Return the pooled Dice per region after the last round of ``mode``."""
        return dict(self.curves[mode][-1]["dice"])

    def ratio(self, numerator: str, denominator: str) -> dict[str, float]:
        """Return final Dice of ``numerator`` over ``denominator`` per region (NaN where undefined)."""
        a, b = self.final(numerator), self.final(denominator)
        return {r: (a[r] / b[r] if b[r] > 0 else float("nan")) for r in REGIONS}

    def to_dict(self) -> dict[str, Any]:
        from fedseg.metrics.report import json_safe

        out: dict[str, Any] = {"config": self.config, "curves": self.curves, "final": {}}
        for mode in self.curves:
            out["final"][mode] = self.final(mode)
        if "fl" in self.curves and "cds" in self.curves:  # undefined where CDS scores 0: null in JSON, not NaN
            out["fl_over_cds"] = json_safe(self.ratio("fl", "cds"))
        return out


_GENERIC_NAMES = {"data", "dataset", "preprocessed", "site-data"}


def _site_ids(dirs: Sequence[Path]) -> list[str]:
    """Return member ids named after the dataset folders (``hospital-a/data`` gives ``hospital-a``)."""
    ids: list[str] = []
    for i, d in enumerate(dirs):
        path = Path(d).resolve()
        name = path.parent.name if path.name.lower() in _GENERIC_NAMES else path.name
        base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:40] or f"site-{i + 1}"
        if not base[0].isalnum():
            base = f"s{base}"
        candidate, n = base, 2
        while candidate in ids or candidate == "coordinator":
            candidate, n = f"{base}-{n}", n + 1
        ids.append(candidate)
    return ids


def evaluate_weights(
    plan: Plan, weights: dict[str, np.ndarray], sites: Sequence[Site], split: str, device: str = "cpu"
) -> dict[str, Any]:
    """Score ``weights`` on every site's ``split``: per-site mean Dice and the pooled mean over all cases.

    Scored as train-local validation scores them (:func:`fedseg.train.validate.validate`, which calls
    :func:`fedseg.inference.score.score_model`); ``device`` is ``auto | cpu | cuda | cuda:N``.
    """
    from fedseg.data.dataset import load_dataset
    from fedseg.model.spec import build_model
    from fedseg.train.validate import validate

    model = build_model(plan.model, weights)
    per_site: dict[str, Any] = {}
    sums = dict.fromkeys(REGIONS, 0.0)
    total = 0
    for site in sites:
        dataset = load_dataset(site.root)
        readers = [dataset.reader(c) for c in dataset.split(split)]
        scores = validate(model, readers, patch_size=plan.training.patch_size, overlap=plan.training.val_overlap,
                          device=device)
        if scores is None:
            continue
        per_site[site.id] = {"n": len(readers), "dice": scores}
        for region in REGIONS:
            sums[region] += scores[region] * len(readers)
        total += len(readers)
    if total == 0:
        raise DatasetError(f"no site has cases in its {split!r} split to evaluate on")
    return {"dice": {r: sums[r] / total for r in REGIONS}, "sites": per_site, "cases": total}


def _schedule(mode: Mode, n_sites: int, rounds: int, steps: int) -> list[list[tuple[tuple[int, ...], int]]]:
    """Return, per round, the training segments (site indices pooled, optimizer steps) of a centralized mode."""
    if mode is Mode.CDS:
        return [[(tuple(range(n_sites)), n_sites * steps)] for _ in range(rounds)]
    if mode is Mode.CIIL:
        return [[((i,), steps) for i in range(n_sites)] for _ in range(rounds)]
    if mode is Mode.IIL:  # site i owns the steps [i*R*S, (i+1)*R*S) of the whole run; cut into rounds of N*S
        per_site, per_round = rounds * steps, n_sites * steps
        blocks = []
        for r in range(rounds):
            start, end, segments = r * per_round, (r + 1) * per_round, []
            while start < end:
                site = start // per_site
                stop = min(end, (site + 1) * per_site)
                segments.append(((site,), stop - start))
                start = stop
            blocks.append(segments)
        return blocks
    raise ConfigError(f"mode {mode.value} has no centralized schedule")


class _Runner:
    """Shared state of one simulation: sites, plan, output folder, and each site's indexed training cases."""

    def __init__(self, plan: Plan, sites: list[Site], out: Path, split: str, device: str, seed: int,
                 say: Callable[[str], None]) -> None:
        self.plan, self.sites, self.out, self.split, self.device, self.seed, self.say = (
            plan, sites, out, split, device, seed, say)
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

    def evaluate(self, weights: dict[str, np.ndarray]) -> dict[str, Any]:
        return evaluate_weights(self.plan, weights, self.sites, self.split, self.device)

    def curve_path(self, mode: str) -> Path:
        return self.out / mode / "curve.json"

    def load_curve(self, mode: str) -> list[dict[str, Any]]:
        path = self.curve_path(mode)
        return json.loads(path.read_text("utf-8")) if path.exists() else []

    def save_curve(self, mode: str, curve: list[dict[str, Any]]) -> None:
        atomic_write_json(self.curve_path(mode), curve)


def _run_fl(run: _Runner, keys: dict[str, Any], initial: dict[str, Any], rounds: int, steps: int) -> list[dict]:
    from fedseg.workflow.coordinator.aggregate import aggregate_round
    from fedseg.workflow.initial import global_filename
    from fedseg.workflow.site.received import read_global
    from fedseg.workflow.site.train import train_local

    fl = run.out / "fl"
    curve = run.load_curve("fl") or [dict(initial, round=0)]
    current = fl / global_filename(0)
    for r in range(1, rounds + 1):
        nxt = fl / global_filename(r)
        if len(curve) > r and nxt.exists():
            current = nxt
            continue
        updates = []
        for site in run.sites:
            update = fl / "updates" / f"r{r:04d}" / f"{site.id}.fedseg"
            if not update.exists():
                run.say(f"fl round {r}/{rounds}: {site.id} trains {steps} steps")
                ckpt = update.with_name(update.name + ".ckpt")
                train_local(run.plan, current, site.root, keys[site.id], update, steps=steps, device=run.device,
                            resume=ckpt.exists(), state_path=fl / "state" / f"{site.id}.json", checkpoint_dir=ckpt)
            updates.append(update)
        run.say(f"fl round {r}/{rounds}: coordinator aggregates {len(updates)} updates")
        if not nxt.exists():
            aggregate_round(plan=run.plan, global_path=current, key=keys["coordinator"], update_paths=updates,
                            out=nxt, ledger_path=fl / "ledger.jsonl")
        weights = {k: np.asarray(v, np.float32) for k, v in read_global(run.plan, nxt).tensors.items()}
        run.say(f"fl round {r}/{rounds}: evaluating the new global")
        curve = curve[:r] + [dict(run.evaluate(weights), round=r)]
        run.save_curve("fl", curve)
        current = nxt
    return curve


def _stable_salt(*parts: object) -> int:
    """Return a salt that is the same in every process (``hash`` of a str is randomized per process)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def _train_segments(run: _Runner, weights: dict[str, np.ndarray], segments: Sequence[tuple[tuple[int, ...], int]],
                    salt: int) -> dict[str, np.ndarray]:
    from fedseg.model.spec import build_model, state_to_numpy
    from fedseg.train.loop import train

    model = build_model(run.plan.model, weights)
    for k, (site_idx, steps) in enumerate(segments):
        cases = [case for i in site_idx for case in run.train_cases(i)]
        config = replace(run.plan.training, seed=int(np.random.default_rng([run.seed, salt, k]).integers(2**31)))
        train(model, cases, config, total_steps=steps, device=resolve_device(run.device))
    return state_to_numpy(model.state_dict())


def _run_central(run: _Runner, mode: Mode, initial_weights: dict[str, np.ndarray], initial: dict[str, Any],
                 rounds: int, steps: int) -> list[dict]:
    from fedseg.train.checkpoint import read_tensors, write_tensors

    folder = run.out / mode.value
    curve = run.load_curve(mode.value) or [dict(initial, round=0)]
    weights = initial_weights
    if len(curve) > 1:
        weights = read_tensors(folder / f"weights-r{len(curve) - 1:04d}.h5")[0]
    for r, segments in enumerate(_schedule(mode, len(run.sites), rounds, steps), start=1):
        if r < len(curve):
            continue
        who = ", ".join(f"{'+'.join(run.sites[i].id for i in s)}×{n}" for s, n in segments)
        run.say(f"{mode.value} round {r}/{rounds}: trains {who} steps")
        weights = _train_segments(run, weights, segments, salt=_stable_salt(mode.value, r))
        write_tensors(folder / f"weights-r{r:04d}.h5", weights)
        curve.append(dict(run.evaluate(weights), round=r))
        run.save_curve(mode.value, curve)
    return curve


def _run_local(run: _Runner, initial_weights: dict[str, np.ndarray], initial: dict[str, Any], rounds: int,
               steps: int) -> list[dict]:
    from fedseg.train.checkpoint import read_tensors, write_tensors

    per_site = []
    for i, site in enumerate(run.sites):
        name = f"local/{site.id}"
        curve = run.load_curve(name) or [dict(initial, round=0)]
        weights = initial_weights
        if len(curve) > 1:
            weights = read_tensors(run.out / name / f"weights-r{len(curve) - 1:04d}.h5")[0]
        for r in range(len(curve), rounds + 1):
            run.say(f"local round {r}/{rounds}: {site.id} trains {steps} steps alone")
            weights = _train_segments(run, weights, [((i,), steps)], salt=_stable_salt("local", i, r))
            write_tensors(run.out / name / f"weights-r{r:04d}.h5", weights)
            curve.append(dict(run.evaluate(weights), round=r))
            run.save_curve(name, curve)
        per_site.append(curve)
    mean_curve = []
    for r in range(rounds + 1):
        points = [c[r] for c in per_site]
        mean_curve.append({"round": r, "dice": {g: float(np.mean([p["dice"][g] for p in points])) for g in REGIONS},
                           "models": {s.id: p for s, p in zip(run.sites, points)}})
    return mean_curve


def _setup(dirs: Sequence[Path], out: Path, template: Plan | None, rounds: int, seed: int,
           say: Callable[[str], None]) -> tuple[Plan, list[Site], dict[str, Any]]:
    from fedseg.configs.aggregation import AggregationConfig
    from fedseg.configs.model import ModelConfig
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.data.dataset import load_dataset
    from fedseg.federation.keys import generate_keypair, load_private_key
    from fedseg.federation.plan import Member, load_plan, new_plan, write_plan
    from fedseg.workflow.initial import write_initial_global

    if len(dirs) < 1:
        raise ConfigError("simulate needs at least one site dataset folder")
    sites = [Site(i, Path(d)) for i, d in zip(_site_ids(dirs), dirs)]
    configs = []
    for site in sites:
        dataset = load_dataset(site.root)
        configs.append(config_from_mapping(PreprocessConfig, dataset.preprocessing, f"{site.root}/dataset.json"))
        if not dataset.split("train"):
            raise DatasetError(f"{site.root}: the train split is empty; every site needs training cases")
    if any(c != configs[0] for c in configs):
        raise DatasetError("the site datasets were preprocessed with different settings; preprocess them alike")
    keydir = out / "keys"
    for member in ["coordinator", *(s.id for s in sites)]:
        if not (keydir / f"{member}.key").exists():
            generate_keypair(member, keydir)
    keys = {m: load_private_key(keydir / f"{m}.key") for m in ["coordinator", *(s.id for s in sites)]}
    plan_path = out / "fl" / "plan.toml"
    if plan_path.exists():
        plan = load_plan(plan_path)
        if [s.id for s in plan.sites] != [s.id for s in sites] or plan.rounds != rounds:
            raise ConfigError(f"{plan_path}: an earlier simulation with other sites or rounds lives in {out}; "
                              "use another --out")
        return plan, sites, keys
    model = template.model if template else ModelConfig()
    training = template.training if template else TrainingConfig()
    aggregation = template.aggregation if template else AggregationConfig()
    plan = new_plan(
        "simulation", Member("coordinator", keys["coordinator"].public_key),
        [Member(s.id, keys[s.id].public_key, _enrolled(s)) for s in sites], rounds=rounds, model=model,
        training=replace(training, seed=seed),
        aggregation=replace(aggregation, min_sites=min(aggregation.min_sites, len(sites))),
        preprocessing=configs[0], **({"privacy": template.privacy} if template else {}),
    )
    say(f"plan {plan_path} (sha256 {plan.sha256[:12]}…), round-0 global from seed {seed}")
    write_initial_global(plan, keys["coordinator"], out / "fl", seed=seed)
    write_plan(plan, plan_path)
    return plan, sites, keys


def simulate(
    dataset_dirs: Sequence[Path],
    *,
    out: Path,
    modes: Sequence[Mode | str] = tuple(Mode),
    rounds: int = 5,
    plan: Plan | None = None,
    seed: int = 0,
    steps: int | None = None,
    split: str = "val",
    device: str = "cpu",
    say: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Run every mode on the site datasets ``dataset_dirs`` and write ``OUT/simulation.json`` and a plot.

    ``plan`` supplies model, training and aggregation settings (its members are replaced by fresh simulation
    keys; preprocessing comes from the datasets). ``steps`` per site per round defaults to the plan's
    ``training.steps_per_round``. ``device`` is ``auto | cpu | cuda | cuda:N`` (:mod:`fedseg.device`), resolved
    once here so every mode runs on the same device. Rerunning with the same ``out`` resumes.
    """
    from fedseg.workflow.initial import global_filename
    from fedseg.workflow.site.received import read_global

    say = say or (lambda message: log.info("%s", message))
    device = str(resolve_device(device))  # "auto" becomes the concrete device before any work
    modes = [Mode(m) for m in modes]
    if rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {rounds}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: expected a folder, found a file")
    out.mkdir(parents=True, exist_ok=True)
    the_plan, sites, keys = _setup(dataset_dirs, out, plan, rounds, seed, say)
    steps = steps or the_plan.training.steps_per_round
    run = _Runner(the_plan, sites, out, split, device, seed, say)
    initial_weights = {k: np.asarray(v, np.float32)
                       for k, v in read_global(the_plan, out / "fl" / global_filename(0)).tensors.items()}
    initial_path = out / "initial.json"
    if initial_path.exists():
        initial = json.loads(initial_path.read_text("utf-8"))
    else:
        say("evaluating the shared round-0 model")
        initial = run.evaluate(initial_weights)
        atomic_write_json(initial_path, initial)
    config = {"sites": {s.id: str(s.root) for s in sites}, "modes": [m.value for m in modes], "rounds": rounds,
              "steps_per_site_per_round": steps, "seed": seed, "split": split, "plan_sha256": the_plan.sha256,
              "plan": the_plan.to_dict()}
    result = SimulationResult(config=config)
    for mode in modes:
        if mode is Mode.FL:
            result.curves[mode.value] = _run_fl(run, keys, initial, rounds, steps)
        elif mode is Mode.LOCAL:
            result.curves[mode.value] = _run_local(run, initial_weights, initial, rounds, steps)
        else:
            result.curves[mode.value] = _run_central(run, mode, initial_weights, initial, rounds, steps)
    result.json_path = out / RESULTS_FILE
    atomic_write_json(result.json_path, result.to_dict())
    result.plot_path = plot_curves(result.curves, out / PLOT_FILE)
    return result


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path, *, title: str = "Validation Dice per round") -> Path:
    """Plot pooled Dice per round, one panel per region and one line per mode, to a PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fedseg.fsutil import atomic_path

    fig, axes = plt.subplots(1, len(REGIONS), figsize=(4 * len(REGIONS), 3.4), sharey=True)
    for ax, region in zip(axes, REGIONS):
        for mode, curve in curves.items():
            ax.plot([p["round"] for p in curve], [p["dice"][region] for p in curve], marker="o", label=mode)
        ax.set_title(region)
        ax.set_xlabel("round")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice (pooled over sites)")
    axes[-1].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)

"""Run a simulation: set up the members, train every mode under the stop rule, report both protocols."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fedseg.device import resolve_device
from fedseg.errors import ConfigError
from fedseg.federation.plan import Plan
from fedseg.fsutil import atomic_write_json
from fedseg.privacy import PrivacyConfig
from fedseg.workflow.simulate.modes import Mode, Runner, train_mode, weights_at
from fedseg.workflow.simulate.plot import plot_curves
from fedseg.workflow.simulate.protocol import DEFAULT_PATIENCE, Budget, StopRule
from fedseg.workflow.simulate.report import SimulationResult
from fedseg.workflow.simulate.scoring import ALL_SPLITS, mean_of_models
from fedseg.workflow.simulate.sites import Site, check_inputs, external_sites, member_ids, setup

__all__ = ["simulate"]

log = logging.getLogger(__name__)

RESULTS_FILE = "simulation.json"
PLOT_FILE = "simulation.png"


def _has_test(sites: Sequence[Site]) -> bool:
    from fedseg.data.dataset import load_dataset

    return any(load_dataset(s.root).split("test") for s in sites)


def _scorer(run: Runner, external: Sequence[Site], has_test: bool) -> Callable[[str, int], dict[str, Any]]:
    """Return ``score(mode, round)``: test and external Dice of that model, cached in ``MODE/scores-rNNNN.json``."""

    def score(mode: str, r: int) -> dict[str, Any]:
        path = run.out / mode / f"scores-r{r:04d}.json"
        cached = json.loads(path.read_text("utf-8")) if path.exists() else {"external": {}}
        models: list[Any] | None = None

        def on(split: str, sites: Sequence[Site] | None) -> dict[str, Any]:
            nonlocal models
            models = models or weights_at(run, Mode(mode), r)
            return mean_of_models([run.evaluate(w, split=split, sites=sites) for w in models])

        if "test" not in cached:
            run.say(f"{mode}: scoring round {r}'s model on the test split") if has_test else None
            cached["test"] = on("test", None) if has_test else None
        for site in external:
            if cached["external"].get(site.id, {}).get("root") != str(site.root):
                run.say(f"{mode}: scoring round {r}'s model on external site {site.id}")
                cached["external"][site.id] = dict(on(ALL_SPLITS, [site]), root=str(site.root))
        atomic_write_json(path, cached)
        return {"test": cached["test"], "external": {s.id: cached["external"][s.id] for s in external}}

    return score


#: How the simulation scores its models, recorded with the protocol: a folder scored otherwise (before
#: 2026-12, fedseg scored whole-volume windows, which the instance norms make another model) is not resumed,
#: so its cached scores never mix with these.
SCORING = "training-patch windows"


def _check_protocol(out: Path, protocol: dict[str, Any]) -> None:
    path = out / "protocol.json"
    if path.exists():
        earlier = json.loads(path.read_text("utf-8"))
        if earlier.get("scoring") != protocol["scoring"]:
            raise ConfigError(f"{path}: the simulation in {out} was scored by an older fedseg (whole-volume "
                              "windows), whose scores differ from today's; use another --out")
        if earlier != protocol:
            differ = ", ".join(f"{k} {earlier.get(k)!r} (now {protocol.get(k)!r})"
                               for k in dict.fromkeys([*earlier, *protocol]) if earlier.get(k) != protocol.get(k))
            raise ConfigError(f"{path}: an earlier simulation with other settings lives in {out}: {differ}; "
                              "use another --out, or rerun with the settings it was started with to resume it")
    atomic_write_json(path, protocol)


def simulate(
    dataset_dirs: Sequence[Path],
    *,
    out: Path,
    modes: Sequence[Mode | str] = tuple(Mode),
    rounds: int = 5,
    budget: Budget | str = Budget.EQUAL,
    patience: int = DEFAULT_PATIENCE,
    max_rounds: int = 30,
    external: Sequence[Path] = (),
    plan: Plan | None = None,
    privacy: PrivacyConfig | None = None,
    seed: int = 0,
    steps: int | None = None,
    split: str = "val",
    device: str = "cpu",
    say: Callable[[str], None] | None = None,
    names: dict[Path, str] | None = None,
) -> SimulationResult:
    """Run every mode on the site datasets ``dataset_dirs`` and write ``OUT/simulation.json`` and a plot.

    ``budget`` ``equal`` trains every mode ``rounds`` rounds; ``converged`` trains each until its ``split``
    (validation) Dice has not improved for ``patience`` evaluations, or ``max_rounds``. Each mode's models are
    then reported under both protocols (:mod:`.report`) on the test split and on each ``external`` dataset
    (all its cases). ``plan`` supplies model, training and aggregation settings (without one the model is
    sized to the device); ``privacy`` replaces the plan's ``[privacy]`` table for ``fl`` (the other modes
    are the non-private references); ``steps`` per site per round defaults to the plan's ``training.steps_per_round``.
    ``device`` is ``auto | cpu | cuda | cuda:N``, resolved once here. ``names`` (resolved folder -> member id,
    :func:`~.sites.member_ids`) names the sites; by default each is named after its folder. Rerunning with the
    same ``out`` and settings resumes; other settings are refused.
    """
    say = say or (lambda message: log.info("%s", message))
    device = str(resolve_device(device))  # "auto" becomes the concrete device before any work
    modes = [Mode(m) for m in modes]
    budget = Budget(budget)
    stop = StopRule(budget, rounds if budget is Budget.EQUAL else max_rounds, patience)
    if not modes:
        raise ConfigError("--modes: name at least one of " + ", ".join(m.value for m in Mode))
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1 optimizer step per site per round, got {steps}")
    check_inputs(dataset_dirs, external)  # before anything is written under --out
    if Mode.IIL in modes and budget is Budget.CONVERGED and stop.rounds < len(dataset_dirs):
        raise ConfigError(f"--max-rounds {stop.rounds}: iil visits each of the {len(dataset_dirs)} sites for at "
                          f"least one round; give --max-rounds >= {len(dataset_dirs)} or leave iil out of --modes")
    names = names or member_ids(dataset_dirs, external)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: expected a folder, found a file")
    out.mkdir(parents=True, exist_ok=True)
    the_plan, sites, keys = setup(dataset_dirs, out, plan, stop.rounds, seed, device, say, privacy, steps, names)
    outside = external_sites(external, names)
    steps = steps or the_plan.training.steps_per_round
    _check_protocol(out, {"budget": budget.value, "patience": patience, "rounds": stop.rounds, "steps": steps,
                          "split": split, "scoring": SCORING})
    run = Runner(the_plan, sites, keys, out, split, device, seed, steps, stop, say)
    initial_path = out / "initial.json"
    if initial_path.exists():
        initial = json.loads(initial_path.read_text("utf-8"))
    else:
        say("evaluating the shared round-0 model")
        initial = run.evaluate(run.initial_weights())
        atomic_write_json(initial_path, initial)
    config = {"sites": {s.id: str(s.root) for s in sites}, "external": {s.id: str(s.root) for s in outside},
              "modes": [m.value for m in modes], "budget": budget.value, "patience": patience,
              "rounds": stop.rounds, "steps_per_site_per_round": steps, "seed": seed, "split": split,
              "device": device, "plan_sha256": the_plan.sha256, "plan": the_plan.to_dict()}
    result = SimulationResult(config=config)
    for mode in modes:
        result.curves[mode.value] = train_mode(run, mode, initial)
    n = len(sites)
    result.report(_scorer(run, outside, _has_test(sites)),
                  lambda mode, r: r * steps * (1 if mode == Mode.LOCAL.value else n))
    result.json_path = out / RESULTS_FILE
    atomic_write_json(result.json_path, result.to_dict())
    conv = result.protocols["converged"]["modes"]
    result.plot_path = plot_curves(result.curves, out / PLOT_FILE, selected={m: e["round"] for m, e in conv.items()},
                                   equal_round=next(iter(result.protocols["equal"]["modes"].values()))["round"])
    return result

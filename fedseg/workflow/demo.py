"""The demo: three synthetic hospitals run a whole federation on one machine, as the separate members would.

Each step is the library call its CLI command makes (``fedseg synth``, ``fedseg preprocess``, ``fedseg keys new``,
``fedseg init``, ``fedseg train-local``, ``fedseg aggregate``, ``fedseg evaluate --model``), and every exchange is
a signed file in the output folder. The final global model is scored on every site's held-out ``test`` cases,
which no training or validation step has seen. The numbers are real: nothing is precomputed or downloaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.device import resolve_device
from fedseg.errors import ConfigError
from fedseg.fsutil import atomic_write_json
from fedseg.labels import REGIONS
from fedseg.privacy import PrivacyConfig, PrivacyMode
from fedseg.workflow.demo_next import Comparison, comparison, measured_round_seconds
from fedseg.workflow.demo_sites import LAYOUTS, demo_preprocessing, preprocess_site, synthesize_site

__all__ = ["DemoSettings", "DemoResult", "PRESETS", "run_demo"]

log = logging.getLogger(__name__)

SITE_IDS = ("hospital-a", "hospital-b", "hospital-c", "hospital-d", "hospital-e", "hospital-f")


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo: synthetic cases per site, phantom scale, preprocessing spacing, model and schedule."""

    sites: int = 3
    rounds: int = 5
    cases_per_site: int = 10
    size_scale: float = 0.6
    spacing_mm: float = 2.0
    #: The classical extractor fits the demo's time budget (deepbet adds 6-9 s per case on 2 cores).
    skull_strip: str = "classic"
    widths: tuple[int, ...] = (16, 32, 64, 128)
    convs_per_stage: int = 1
    patch_size: tuple[int, int, int] = (32, 32, 32)
    batch_size: int = 4
    steps_per_round: int = 40
    learning_rate: float = 1e-2
    seed: int = 0
    #: The plan's ``[privacy]`` table (``fedseg demo --privacy``); off by default.
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.sites <= len(SITE_IDS):
            raise ConfigError(f"--sites must lie in 1..{len(SITE_IDS)}, got {self.sites}")
        if self.rounds < 1:
            raise ConfigError(f"--rounds must be >= 1, got {self.rounds}")
        if self.cases_per_site < 4:
            raise ConfigError(f"each site needs >= 4 cases (train, val and test), got {self.cases_per_site}")


#: ``default`` is the demo (about 5 minutes on 2 CPU cores, held-out Dice about 0.7; README); ``fast`` is the
#: smallest run that still exercises every step (the end-to-end test uses it).
PRESETS: dict[str, DemoSettings] = {
    "default": DemoSettings(),
    "fast": DemoSettings(rounds=2, cases_per_site=5, size_scale=0.45, spacing_mm=3.0, widths=(4, 8, 16),
                         batch_size=2, steps_per_round=15),
}


@dataclass
class DemoResult:
    """What the demo did and measured."""

    out: Path
    plan_path: Path
    settings: dict[str, Any]
    per_round: list[dict[str, Any]] = field(default_factory=list)  # global r: val Dice per site (pooled)
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)  # site -> region -> mean Dice (test)
    held_out_cases: int = 0
    artifacts_verified: int = 0
    ledger_entries: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    plot_path: Path | None = None
    json_path: Path | None = None
    commands: list[str] = field(default_factory=list)
    privacy: dict[str, Any] | None = None  # the final global's privacy record (ε spent), None with privacy off
    comparison: Comparison | None = None  # the simulate command that compares FL with pooled training

    def held_out_mean(self) -> dict[str, float]:
        """Return the held-out Dice per region, weighted by each site's number of test cases."""
        return _pooled(self.held_out, self.settings["test_cases"])

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "plan": str(self.plan_path), "settings": self.settings,
                "per_round_val_dice": self.per_round, "held_out_test_dice": self.held_out,
                "held_out_mean": self.held_out_mean(), "held_out_cases": self.held_out_cases,
                "artifacts_verified": self.artifacts_verified, "ledger_entries": self.ledger_entries,
                "seconds": self.seconds, "plot": str(self.plot_path), "commands": self.commands,
                "privacy": self.privacy, "comparison": self.comparison.to_dict() if self.comparison else None}


def _pooled(scores: dict[str, dict[str, float]], counts: dict[str, int]) -> dict[str, float]:
    """Return the per-region mean over sites weighted by each site's number of cases."""
    total = sum(counts[s] for s in scores)
    return {r: sum(scores[s][r] * counts[s] for s in scores) / total for r in REGIONS}


def _commands(out: Path, site_ids: list[str], rounds: int) -> list[str]:
    a = site_ids[0]
    fed = out / "fed"
    return [
        f"fedseg keys new {a} --out keys/                      # at {a}; send keys/{a}.pub to the coordinator",
        "fedseg keys new coordinator --out keys/              # at the coordinator",
        "fedseg init --name brats-fl --coordinator-key keys/coordinator.key "
        + " ".join(f"--site {s}=keys/{s}.pub" for s in site_ids) + " --out fed/",
        f"fedseg preprocess raw/ --out {a}-data/                # at each site, on its own scans",
        f"fedseg train-local --plan fed/plan.toml --global fed/global-r0000.fedseg --data {a}-data/ "
        f"--key keys/{a}.key --out {a}-r0001.fedseg",
        "fedseg aggregate --plan fed/plan.toml --global fed/global-r0000.fedseg --key keys/coordinator.key "
        + " ".join(f"{s}-r0001.fedseg" for s in site_ids) + " --out fed/global-r0001.fedseg",
        f"fedseg evaluate --plan {fed}/plan.toml --model {fed}/global-r{rounds:04d}.fedseg "
        f"--data {out / a / 'data'} --split test",
        f"fedseg inspect {fed}/global-r{rounds:04d}.fedseg --plan {fed}/plan.toml",
    ]


def _settings_dict(s: DemoSettings, site_ids: list[str], val: dict[str, int], test: dict[str, int]) -> dict[str, Any]:
    from fedseg.configtools import config_to_dict

    plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items() if k != "privacy"}
    return {**plain, "privacy": config_to_dict(s.privacy), "sites_ids": site_ids, "val_cases": val, "test_cases": test}


def _local_val_dice(update: Path) -> dict[str, float]:
    """Return the site's own validation Dice of the received global, from its checkpoint (kept at the site).

    The update may not carry it: with fewer than ``training.metrics_min_cases`` validation cases the
    figure stays at the site (:func:`fedseg.workflow.site.export.site_metrics`).
    """
    from fedseg.train import checkpoint as ckpt
    from fedseg.workflow.site.record import CheckpointRecord

    folder = update.with_name(update.name + ".ckpt")
    meta, _ = ckpt.load_checkpoint(folder)
    record = CheckpointRecord.from_meta(meta, folder / ckpt.STATE_FILE)
    return dict(record.val_dice_before) if record.val_dice_before else dict.fromkeys(REGIONS, float("nan"))


def run_demo(out: Path, settings: DemoSettings, *, say: Callable[[str], None] | None = None,
             device: str = "cpu") -> DemoResult:
    """Run the whole demo into ``out`` (created; an existing demo folder is reused step by step)."""
    from fedseg.configs.aggregation import AggregationConfig, aggregation_for_privacy
    from fedseg.configs.model import ModelConfig
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.federation.artifact import Kind, read_artifact
    from fedseg.federation.keys import generate_keypair, load_private_key
    from fedseg.federation.ledger import Ledger
    from fedseg.federation.plan import load_plan
    from fedseg.inference.evaluate_model import evaluate_model
    from fedseg.inference.predict import PredictOptions
    from fedseg.workflow.coordinator.aggregate import aggregate_round
    from fedseg.workflow.init import init_federation
    from fedseg.workflow.initial import global_filename
    from fedseg.workflow.model_io import inference_spec, load_global_model
    from fedseg.workflow.simulate import plot_curves
    from fedseg.workflow.site.train import train_local

    say = say or (lambda message: log.info("%s", message))
    device = str(resolve_device(device))  # a device this machine lacks fails here, before any work
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: expected a folder, found a file")
    s = settings
    site_ids = list(SITE_IDS[: s.sites])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # 1. Each hospital has its own scanner (site profile) and raw layout.
    preprocessing = demo_preprocessing(s)
    for i, site in enumerate(site_ids):
        if not (out / "raw" / site).exists():
            say(f"{site}: synthesizing {s.cases_per_site} raw cases with skull (profile {i % 3}, {LAYOUTS[i % 3]})")
            synthesize_site(out / "raw" / site, i, site, s)
    timings["synth"] = time.perf_counter() - t0

    # 2. Each site preprocesses its own scans (skull stripping runs: the raw scans have a skull).
    t = time.perf_counter()
    counts: dict[str, int] = {}
    for site in site_ids:
        say(f"{site}: preprocessing (register, resample to {s.spacing_mm} mm, skull-strip with {s.skull_strip} "
            "to fit the demo's time, normalize, crop)")
        preprocess_site(out / "raw" / site, out / site / "data", site, preprocessing)
    timings["preprocess"] = time.perf_counter() - t

    # 3. Keys and plan: every member makes its key pair; the coordinator writes the plan and round-0 global.
    keydir = out / "keys"
    for member in ["coordinator", *site_ids]:
        if not (keydir / f"{member}.key").exists():
            generate_keypair(member, keydir)
    fed = out / "fed"
    plan_path = fed / "plan.toml"
    from fedseg.data.dataset import load_dataset

    if not plan_path.exists():
        enrolled = {site: len(load_dataset(out / site / "data").split("train")) for site in site_ids}
        stages = len(s.widths)
        model = config_from_mapping(ModelConfig, {"widths": list(s.widths), "kernels": [[3, 3, 3]] * stages,
                                                  "convs_per_stage": s.convs_per_stage,
                                                  "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1)}, "demo model")
        say(f"coordinator: plan for {len(site_ids)} sites, U-Net widths {list(s.widths)}, {s.rounds} rounds, "
            f"privacy {s.privacy.mode.value}")
        agg = aggregation_for_privacy(s.privacy, AggregationConfig(min_sites=len(site_ids)))
        init_federation(name="fedseg-demo", coordinator_key=keydir / "coordinator.key",
                        sites=[(site, keydir / f"{site}.pub", enrolled[site]) for site in site_ids], out_dir=fed,
                        settings={"rounds": s.rounds}, model=model, seed=s.seed,
                        training={"patch_size": s.patch_size, "batch_size": s.batch_size,
                                  "steps_per_round": s.steps_per_round, "learning_rate": s.learning_rate,
                                  "seed": s.seed},
                        aggregation={"min_sites": agg.min_sites, "weighting": agg.weighting}, privacy=s.privacy,
                        preprocessing={"spacing": preprocessing.spacing, "val_fraction": 0.2, "test_fraction": 0.2,
                                       "skull_strip": preprocessing.skull_strip, "qc_brain_ml": preprocessing.qc_brain_ml})
    plan = load_plan(plan_path)
    if plan.privacy != s.privacy:
        raise ConfigError(f"{plan_path} was written with privacy {plan.privacy.mode.value} settings other than "
                          "these; remove the demo folder (or its fed/ folder) and start again")
    keys = {m: load_private_key(keydir / f"{m}.key") for m in ["coordinator", *site_ids]}

    for site in site_ids:
        ds = load_dataset(out / site / "data")
        counts[site] = len(ds.split("val"))
        if config_from_mapping(PreprocessConfig, ds.preprocessing, "dataset") != plan.preprocessing:
            raise ConfigError(f"{out / site / 'data'} was preprocessed with other settings than {plan_path}; "
                              "remove the demo folder and start again")

    # 4. Rounds: sites train on the current global and send signed updates; the coordinator aggregates.
    t = time.perf_counter()
    per_round: list[dict[str, Any]] = []
    fresh_rounds: list[float] = []  # seconds of each round whose every site trained in this run
    for r in range(1, s.rounds + 1):
        current, nxt = fed / global_filename(r - 1), fed / global_filename(r)
        updates, before, t_round, trained = [], {}, time.perf_counter(), 0
        for site in site_ids:
            update = out / site / f"update-r{r:04d}.fedseg"
            if update.exists():  # a rerun: this site already answered this round (the file is verified)
                read_artifact(update, plan, kind=Kind.UPDATE, load_tensors=False)
                before[site] = _local_val_dice(update)
            else:
                say(f"round {r}/{s.rounds}: {site} trains the global locally ({s.steps_per_round} steps)")
                result = train_local(plan, current, out / site / "data", keys[site], update,
                                     device=device, resume=True, validate_after=False,  # the global's score is read
                                     checkpoint_every=max(1, s.steps_per_round // 2))
                before[site] = result.val_dice_before or dict.fromkeys(REGIONS, float("nan"))
                trained += 1
            updates.append(update)
        per_round.append({"round": r - 1, "dice": _pooled(before, counts), "sites": before})
        say(f"round {r}/{s.rounds}: coordinator verifies {len(updates)} updates and aggregates")
        if not nxt.exists():
            aggregate_round(plan=plan, global_path=current, key=keys["coordinator"], update_paths=updates, out=nxt,
                            ledger_path=fed / "ledger.jsonl")
        if trained == len(site_ids):
            fresh_rounds.append(time.perf_counter() - t_round)
    timings["federated_rounds"] = time.perf_counter() - t
    seconds_per_round = measured_round_seconds(fed, fresh_rounds)

    # 5. Everyone scores the final global: on validation cases (for the curve) and held-out test cases.
    t = time.perf_counter()
    final = fed / global_filename(s.rounds)
    val_scores: dict[str, dict[str, float]] = {}
    held_out: dict[str, dict[str, float]] = {}
    test_counts: dict[str, int] = {}
    options = PredictOptions(device=device)
    final_model, spec = load_global_model(plan, final, device), inference_spec(plan)
    for site in site_ids:
        say(f"{site}: evaluating the final global on its validation and held-out test cases")
        for split, target in (("val", val_scores), ("test", held_out)):
            evaluation = evaluate_model(final_model, spec, out / site / "data", split, model_name=str(final),
                                        options=options)
            if evaluation.failures:
                raise ConfigError(f"{site}: evaluation failed: {evaluation.failures[0].message}")
            target[site] = {r: float(np.mean([c.metrics[r]["dice"] for c in evaluation.cases])) for r in REGIONS}
            if split == "test":
                test_counts[site] = len(evaluation.cases)
    per_round.append({"round": s.rounds, "dice": _pooled(val_scores, counts), "sites": val_scores})
    timings["evaluate"] = time.perf_counter() - t

    # 6. Audit: every signed file verifies against the plan, and the ledger's hash chain is intact.
    verified = 0
    for r in range(s.rounds + 1):  # the last manifest read is the final global's (its privacy record below)
        manifest = read_artifact(fed / global_filename(r), plan, kind=Kind.GLOBAL, load_tensors=False).manifest
        verified += 1
    for site in site_ids:
        for r in range(1, s.rounds + 1):
            read_artifact(out / site / f"update-r{r:04d}.fedseg", plan, kind=Kind.UPDATE, load_tensors=False)
            verified += 1
    ledger = Ledger(fed / "ledger.jsonl")
    ledger.verify()
    timings["total"] = time.perf_counter() - t0

    result = DemoResult(out=out, plan_path=plan_path, settings=_settings_dict(s, site_ids, counts, test_counts),
                        per_round=per_round, held_out=held_out, held_out_cases=sum(test_counts.values()),
                        artifacts_verified=verified, ledger_entries=len(list(ledger.entries())), seconds=timings,
                        commands=_commands(out, site_ids, s.rounds),
                        privacy=manifest.get("privacy") if s.privacy.mode is not PrivacyMode.OFF else None,
                        comparison=comparison(out, plan_path, site_ids, seconds_per_round, device)
                        if seconds_per_round else None)
    result.plot_path = plot_curves({"fl (global, validation)": per_round}, out / "dice-per-round.png",
                                   title="Global model: validation Dice per round (pooled over sites)")
    result.json_path = out / "results.json"
    atomic_write_json(result.json_path, result.to_dict())
    return result

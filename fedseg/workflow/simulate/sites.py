"""The simulation's members: site datasets, their ids and keys, the plan, and the model sized to the device."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedseg.errors import ConfigError, DatasetError
from fedseg.federation.plan import Plan
from fedseg.privacy import PrivacyConfig

__all__ = ["Site", "check_inputs", "external_sites", "setup", "site_ids"]

_GENERIC_NAMES = {"data", "dataset", "preprocessed", "site-data"}


@dataclass(frozen=True)
class Site:
    id: str
    root: Path


def site_ids(dirs: Sequence[Path], taken: Sequence[str] = ()) -> list[str]:
    """Return member ids named after the dataset folders (``hospital-a/data`` gives ``hospital-a``)."""
    ids: list[str] = []
    for i, d in enumerate(dirs):
        path = Path(d).resolve()
        name = path.parent.name if path.name.lower() in _GENERIC_NAMES else path.name
        base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:40] or f"site-{i + 1}"
        if not base[0].isalnum():
            base = f"s{base}"
        candidate, n = base, 2
        while candidate in ids or candidate in taken or candidate == "coordinator":
            candidate, n = f"{base}-{n}", n + 1
        ids.append(candidate)
    return ids


def _preprocessing(root: Path) -> Any:
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.data.dataset import load_dataset

    return config_from_mapping(PreprocessConfig, load_dataset(root).preprocessing, f"{root}/dataset.json")


def check_inputs(dataset_dirs: Sequence[Path], external: Sequence[Path]) -> None:
    """Refuse, before a simulation writes anything, a folder that is not a site dataset, and an external
    dataset that trains in the simulation, is named twice, was preprocessed otherwise or has no usable case."""
    from fedseg.data.dataset import load_dataset

    if not dataset_dirs:
        raise ConfigError("simulate needs at least one site dataset folder")
    for d in dataset_dirs:
        load_dataset(Path(d))
    inside = {Path(d).resolve() for d in dataset_dirs}
    reference = _preprocessing(Path(dataset_dirs[0]))
    seen: set[Path] = set()
    for d in external:
        if Path(d).resolve() in inside:
            raise ConfigError(f"--external {d}: this dataset trains in the simulation; "
                              "an external site must take no part in training")
        if Path(d).resolve() in seen:
            raise ConfigError(f"--external {d}: named twice; name each external site once")
        seen.add(Path(d).resolve())
        if not load_dataset(Path(d)).split("all"):
            raise DatasetError(f"--external {d}: the dataset has no usable case to score")
        if _preprocessing(Path(d)) != reference:
            raise DatasetError(f"--external {d}: preprocessed with other settings than the training sites")


def external_sites(sites: Sequence[Site], dirs: Sequence[Path]) -> list[Site]:
    """Return the external (out-of-federation) sites, named after their folders apart from the training sites'
    (:func:`check_inputs` has checked them)."""
    return [Site(i, Path(d)) for i, d in zip(site_ids(dirs, taken=[s.id for s in sites]), dirs)]


def _default_settings(device: str, say: Callable[[str], None]) -> tuple[Any, Any]:
    """Return (model, training) for a simulation without a plan: the demo's small model on a CPU."""
    from fedseg.configs.model import ModelConfig
    from fedseg.configs.training import TrainingConfig
    from fedseg.configtools import config_from_mapping

    if device.startswith("cuda"):
        say(f"no --plan: the plan's default model on {device}")
        return ModelConfig(), TrainingConfig()
    from fedseg.workflow.demo import PRESETS

    s = PRESETS["default"]
    stages = len(s.widths)
    model = config_from_mapping(ModelConfig, {"widths": list(s.widths), "kernels": [[3, 3, 3]] * stages,
                                              "convs_per_stage": s.convs_per_stage,
                                              "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1)}, "demo model")
    training = replace(TrainingConfig(), patch_size=s.patch_size, batch_size=s.batch_size,
                       steps_per_round=s.steps_per_round, learning_rate=s.learning_rate)
    say(f"no --plan on the CPU: the demo's small model (U-Net widths {list(s.widths)}, patch {s.patch_size}, "
        f"{s.steps_per_round} steps per round) so the run finishes in minutes; pass --plan for another model")
    return model, training


def setup(dirs: Sequence[Path], out: Path, template: Plan | None, rounds: int, seed: int, device: str,
          say: Callable[[str], None], privacy: PrivacyConfig | None = None,
          steps: int | None = None) -> tuple[Plan, list[Site], dict[str, Any]]:
    """Return the simulation's plan (written with its round-0 global under ``out/fl``), sites and keys.

    ``privacy`` replaces the template's ``[privacy]`` table (off without either); it applies to ``fl``.
    ``steps`` (per site per round) becomes the plan's ``training.steps_per_round``, for which a DP-SGD
    budget is derived.
    """
    from fedseg.configs.aggregation import AggregationConfig, aggregation_for_privacy
    from fedseg.data.dataset import load_dataset
    from fedseg.federation.keys import generate_keypair, load_private_key
    from fedseg.federation.plan import Member, load_plan, new_plan, write_plan
    from fedseg.workflow.initial import write_initial_global

    sites = [Site(i, Path(d)) for i, d in zip(site_ids(dirs), dirs)]
    configs = [_preprocessing(site.root) for site in sites]
    for site in sites:
        if not load_dataset(site.root).split("train"):
            raise DatasetError(f"{site.root}: the train split is empty; every site needs training cases")
    if any(c != configs[0] for c in configs):
        raise DatasetError("the site datasets were preprocessed with different settings; preprocess them alike")
    keydir = out / "keys"
    for member in ["coordinator", *(s.id for s in sites)]:
        if not (keydir / f"{member}.key").exists():
            generate_keypair(member, keydir)
    keys = {m: load_private_key(keydir / f"{m}.key") for m in ["coordinator", *(s.id for s in sites)]}
    privacy = privacy or (template.privacy if template else PrivacyConfig())
    plan_path = out / "fl" / "plan.toml"
    if plan_path.exists():
        plan = load_plan(plan_path)
        if [s.id for s in plan.sites] != [s.id for s in sites] or plan.rounds != rounds or plan.privacy != privacy:
            raise ConfigError(f"{plan_path}: an earlier simulation with other sites, rounds or privacy settings "
                              f"lives in {out}; use another --out")
        return plan, sites, keys
    if template is not None:
        model, training, aggregation = template.model, template.training, template.aggregation
    else:
        (model, training), aggregation = _default_settings(device, say), AggregationConfig()
    enrolled = [max(1, len(load_dataset(s.root).split("train"))) for s in sites]
    plan = new_plan(
        "simulation", Member("coordinator", keys["coordinator"].public_key),
        [Member(s.id, keys[s.id].public_key, n) for s, n in zip(sites, enrolled)], rounds=rounds, model=model,
        training=replace(training, seed=seed, steps_per_round=steps or training.steps_per_round),
        aggregation=aggregation_for_privacy(privacy, replace(aggregation, min_sites=min(aggregation.min_sites,
                                                                                         len(sites)))),
        preprocessing=configs[0], privacy=privacy,
    )
    say(f"plan {plan_path} (sha256 {plan.sha256[:12]}…), round-0 global from seed {seed}")
    write_initial_global(plan, keys["coordinator"], out / "fl", seed=seed)
    write_plan(plan, plan_path)
    return plan, sites, keys

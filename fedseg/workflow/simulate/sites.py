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

__all__ = ["Site", "check_inputs", "external_sites", "member_ids", "setup", "site_ids"]

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


def member_ids(dataset_dirs: Sequence[Path], external: Sequence[Path]) -> dict[Path, str]:
    """Return every training and external dataset's member id, keyed by its resolved folder.

    The ids are drawn over both lists at once (training sites first), so a caller that moves a dataset from
    one list to the other (``--leave-one-out``) can keep the names it drew for the whole set.
    """
    dirs = [*dataset_dirs, *external]
    return {Path(d).resolve(): i for d, i in zip(dirs, site_ids(dirs))}


def _preprocessing(root: Path) -> Any:
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.data.dataset import load_dataset

    return config_from_mapping(PreprocessConfig, load_dataset(root).preprocessing, f"{root}/dataset.json")


def check_inputs(dataset_dirs: Sequence[Path], external: Sequence[Path]) -> None:
    """Refuse, before a simulation writes anything, a folder that is not a site dataset, a site named twice or
    without training cases, sites preprocessed unlike each other, and an external dataset that trains in the
    simulation, is named twice, was preprocessed otherwise or has no usable case."""
    from fedseg.data.dataset import load_dataset

    if not dataset_dirs:
        raise ConfigError("simulate needs at least one site dataset folder")
    inside: set[Path] = set()
    for d in dataset_dirs:
        if Path(d).resolve() in inside:
            raise ConfigError(f"{d}: named twice; name each site dataset once")
        inside.add(Path(d).resolve())
        if not load_dataset(Path(d)).split("train"):
            raise DatasetError(f"{d}: the train split is empty; every site needs training cases")
    reference = _preprocessing(Path(dataset_dirs[0]))
    if any(_preprocessing(Path(d)) != reference for d in dataset_dirs[1:]):
        raise DatasetError("the site datasets were preprocessed with different settings; preprocess them alike")
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


def external_sites(dirs: Sequence[Path], names: dict[Path, str]) -> list[Site]:
    """Return the external (out-of-federation) sites under their :func:`member_ids` names
    (:func:`check_inputs` has checked them)."""
    return [Site(names[Path(d).resolve()], Path(d)) for d in dirs]


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
          say: Callable[[str], None], privacy: PrivacyConfig | None, steps: int | None,
          names: dict[Path, str]) -> tuple[Plan, list[Site], dict[str, Any]]:
    """Return the simulation's plan (written with its round-0 global under ``out/fl``), sites and keys.

    ``privacy`` replaces the template's ``[privacy]`` table (off without either); it applies to ``fl``.
    ``steps`` (per site per round) becomes the plan's ``training.steps_per_round``, for which a DP-SGD
    budget is derived. ``names`` (:func:`member_ids`) names the sites. A plan already under ``out`` is
    resumed only when it is the one these settings make (sites, rounds, seed, model, training, aggregation,
    privacy): another run's models are never reported as this one's.
    """
    from fedseg.configs.aggregation import AggregationConfig, aggregation_for_privacy
    from fedseg.data.dataset import load_dataset
    from fedseg.federation.keys import generate_keypair, load_private_key
    from fedseg.federation.plan import Member, load_plan, new_plan, write_plan
    from fedseg.workflow.initial import write_initial_global

    sites = [Site(names[Path(d).resolve()], Path(d)) for d in dirs]
    plan_path = out / "fl" / "plan.toml"
    earlier = load_plan(plan_path) if plan_path.exists() else None
    if earlier is not None and [s.id for s in earlier.sites] != [s.id for s in sites]:  # before any key is made
        raise ConfigError(f"{plan_path}: an earlier simulation with other sites "
                          f"({', '.join(s.id for s in earlier.sites)}) lives in {out}; use another --out")
    keydir = out / "keys"
    for member in ["coordinator", *(s.id for s in sites)]:
        if not (keydir / f"{member}.key").exists():
            generate_keypair(member, keydir)
    keys = {m: load_private_key(keydir / f"{m}.key") for m in ["coordinator", *(s.id for s in sites)]}
    privacy = privacy or (template.privacy if template else PrivacyConfig())
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
        preprocessing=_preprocessing(sites[0].root), privacy=privacy,
    )
    if earlier is not None:
        # Compared as plain data, not by hash: a plan file written before a setting existed loads with that
        # setting's meaning for old files, and hashes over only the keys it states.
        now, then = replace(plan, federation_id=earlier.federation_id).to_dict(), earlier.to_dict()
        if now != then:
            differ = [k for k in dict.fromkeys([*now, *then]) if k != "federation" and now.get(k) != then.get(k)]
            if now["federation"]["rounds"] != then["federation"]["rounds"]:
                differ.insert(0, "rounds")
            raise ConfigError(f"{plan_path}: an earlier simulation with other {', '.join(differ) or 'settings'} "
                              f"(seed {earlier.training.seed}) lives in {out}; use another --out, or rerun with "
                              "the settings it was started with to resume it")
        return earlier, sites, keys
    say(f"plan {plan_path} (sha256 {plan.sha256[:12]}…), round-0 global from seed {seed}")
    write_initial_global(plan, keys["coordinator"], out / "fl", seed=seed)
    write_plan(plan, plan_path)
    return plan, sites, keys

"""`fedseg init`: create a federation plan and the signed round-0 global model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import stdout
from fedseg.cli._options import DeltaOption, MaxGradNormOption, PrivacyOption, TargetEpsilonOption, privacy_config
from fedseg.cli.keys import passphrase_from_env


def init(
    name: Annotated[str, typer.Option("--name", help="Federation name, e.g. brats-fl.")],
    coordinator_key: Annotated[Path, typer.Option("--coordinator-key", help="Coordinator's private key (signs globals).", exists=True, dir_okay=False)],
    site: Annotated[list[str], typer.Option("--site", help="A member site as ID=PUBFILE[:CASES] (CASES: its enrolled training cases, which bound the example count its updates may claim); repeat per site.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for plan.toml and global-r0000.fedseg.")],
    coordinator_id: Annotated[str, typer.Option("--coordinator-id", help="Member id of the coordinator.")] = "coordinator",
    rounds: Annotated[int, typer.Option("--rounds", help="Number of aggregation rounds planned.")] = 10,
    strategy: Annotated[str, typer.Option("--strategy", help="fedavg | fedavgm | fedadam | fedyogi | fedadagrad | median | trimmed-mean.")] = "fedavg",
    min_sites: Annotated[int | None, typer.Option("--min-sites", help="Quorum: fewest accepted updates per round (default: a majority of the sites).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Local optimizer steps per round.")] = None,
    patch_size: Annotated[str | None, typer.Option("--patch-size", help="Training patch z,y,x, e.g. 96,96,96.")] = None,
    widths: Annotated[str | None, typer.Option("--widths", help="U-Net channels per stage, e.g. 16,32,64,128,256.")] = None,
    spacing: Annotated[float | None, typer.Option("--spacing", help="Preprocessing voxel spacing in mm (isotropic).")] = None,
    early_stop_patience: Annotated[int, typer.Option("--early-stop-patience", min=0, help="End the run once the federated validation of this many globals in a row has not improved (0: run every planned round); the best global is the result either way.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the round-0 weights.")] = 0,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the coordinator key's passphrase.")] = None,
    privacy: PrivacyOption = "off",
    target_epsilon: TargetEpsilonOption = 8.0,
    delta: DeltaOption = 1e-5,
    max_grad_norm: MaxGradNormOption = 1.0,
) -> None:
    """Create a federation: OUT/plan.toml (fresh federation id) and the signed round-0 global model.

    Defaults for the model, training, aggregation and preprocessing are written into the TOML with
    comments; edit them there or override the common ones with options.

    Example: fedseg init --name brats-fl --coordinator-key coord.key --site site-a=site-a.pub:120 --site site-b=site-b.pub:85 --out fed/
    """
    from fedseg.configs.model import ModelConfig
    from fedseg.configtools import config_from_mapping
    from fedseg.federation.plan import PlanError
    from fedseg.workflow.init import init_federation, parse_site_option

    def ints(text: str, option: str) -> list[int]:
        try:
            return [int(v) for v in text.split(",")]
        except ValueError:
            raise PlanError(f"{option} {text!r}: expected comma-separated integers") from None

    training: dict[str, object] = {}
    if steps is not None:
        training["steps_per_round"] = steps
    if patch_size is not None:
        training["patch_size"] = ints(patch_size, "--patch-size")
    model = None
    if widths is not None:
        stages = ints(widths, "--widths")
        model = config_from_mapping(ModelConfig, {"widths": stages, "kernels": [[3, 3, 3]] * len(stages),
                                                  "strides": [[1, 1, 1]] + [[2, 2, 2]] * (len(stages) - 1)}, "--widths")
    from fedseg.configs.aggregation import AggregationConfig, aggregation_for_privacy
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configs.training import TrainingConfig

    training_cfg = config_from_mapping(TrainingConfig, training, "training") if training else None
    from fedseg.federation.plan import majority

    sites = [parse_site_option(s) for s in site]
    quorum = majority(len(sites)) if min_sites is None else min_sites
    privacy_cfg = privacy_config(privacy, target_epsilon, delta, max_grad_norm)
    aggregation_raw: dict[str, object] = {"strategy": strategy, "min_sites": quorum,
                                          "early_stop_patience": early_stop_patience}
    aggregation_cfg = aggregation_for_privacy(privacy_cfg, config_from_mapping(AggregationConfig, aggregation_raw,
                                                                              "aggregation"))
    preprocessing_cfg = (config_from_mapping(PreprocessConfig, {"spacing": [spacing] * 3}, "preprocessing")
                         if spacing is not None else None)
    result = init_federation(
        name=name,
        coordinator_key=coordinator_key,
        coordinator_id=coordinator_id,
        sites=sites,
        out_dir=out,
        passphrase=passphrase_from_env(passphrase_env),
        settings={"rounds": rounds},
        training={k: getattr(training_cfg, k) for k in training} if training_cfg else None,
        aggregation={"strategy": aggregation_cfg.strategy, "min_sites": aggregation_cfg.min_sites,
                     "weighting": aggregation_cfg.weighting, "early_stop_patience": aggregation_cfg.early_stop_patience},
        privacy=privacy_cfg,
        preprocessing={"spacing": preprocessing_cfg.spacing} if preprocessing_cfg else None,
        model=model,
        seed=seed,
    )
    console = stdout()
    console.print(f"plan:   {result.plan_path}  (sha256 {result.plan.sha256})")
    if result.global_path is not None:
        console.print(f"global: {result.global_path}")
    console.print(f"federation {result.plan.name} ({result.plan.federation_id}) with sites "
                  f"{', '.join(s.id for s in result.plan.sites)}")
    from fedseg.cli.plan import print_planned_privacy
    from fedseg.workflow.privacy_plan import planned_privacy

    print_planned_privacy(console, planned_privacy(result.plan))

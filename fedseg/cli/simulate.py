"""`fedseg simulate`: federated vs pooled vs incremental vs local training on one machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import print_json, stderr, stdout
from fedseg.cli._options import DeviceOption


def simulate(
    datasets: Annotated[list[Path], typer.Argument(help="Site dataset folders (from `fedseg preprocess`), one per site.")],
    modes: Annotated[str, typer.Option("--modes", help="Comma-separated: fl, cds, iil, ciil, local.")] = "fl,cds,iil,ciil,local",
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds; every mode gets the same budget per round.")] = 5,
    plan: Annotated[Path | None, typer.Option("--plan", help="Take model/training/aggregation settings from this plan.", exists=True, dir_okay=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (rerun with the same folder to resume).")] = Path("simulation"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shared initial model and of training.")] = 0,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps per site per round (default: the plan's).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split scored after every round: val or test.")] = "val",
    device: DeviceOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON of every number instead of the table.")] = False,
) -> None:
    """Compare federated learning with pooled, incremental, cyclic and local training (Sheller et al. 2020).

    Every mode starts from the same model and spends the same training budget; `fl` runs the real signed path
    (updates, screening, aggregation, ledger). Writes OUT/simulation.json and OUT/simulation.png.

    Example: fedseg simulate site-a-data/ site-b-data/ site-c-data/ --modes fl,cds,iil,ciil --rounds 10
    """
    from rich.table import Table

    from fedseg.federation.plan import load_plan
    from fedseg.labels import REGIONS
    from fedseg.workflow.simulate import Mode
    from fedseg.workflow.simulate import simulate as run_simulation

    try:
        mode_list = [Mode(m.strip()) for m in modes.split(",") if m.strip()]
    except ValueError:
        raise typer.BadParameter(f"{modes!r}: expected a comma-separated subset of fl, cds, iil, ciil, local",
                                 param_hint="--modes") from None
    if split not in ("val", "test"):
        raise typer.BadParameter(f"{split!r}: expected val or test", param_hint="--split")
    err = stderr()
    with err.status("simulating…") as status:
        result = run_simulation(datasets, out=out, modes=mode_list, rounds=rounds,
                                plan=load_plan(plan) if plan else None, seed=seed, steps=steps, split=split,
                                device=device, say=lambda m: (status.update(m), err.log(m)))
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"Final {split} Dice after {rounds} round(s), pooled over {len(datasets)} site(s)")
    table.add_column("mode")
    for region in REGIONS:
        table.add_column(region, justify="right")
    for mode in result.curves:
        final = result.final(mode)
        table.add_row(mode, *(f"{final[r]:.3f}" for r in REGIONS))
    if "fl" in result.curves and "cds" in result.curves:
        ratio = result.ratio("fl", "cds")
        table.add_row("[bold]FL / CDS[/]", *(f"{ratio[r]:.3f}" for r in REGIONS))
    console = stdout()
    console.print(table)
    console.print(f"numbers: {result.json_path}\nplot:    {result.plot_path}")

"""`fedseg demo`: three synthetic hospitals run a whole federation; ends with real results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import stderr, stdout
from fedseg.cli._options import DeviceOption


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo makes.")] = Path("fedseg-demo"),
    sites: Annotated[int | None, typer.Option("--sites", help="Number of hospitals (default 3).")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Federated rounds.")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Smallest run that exercises every step (about a minute).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic scans and the model.")] = 0,
    device: DeviceOption = "cpu",
) -> None:
    """Run a whole federation of synthetic hospitals: synth, preprocess, keys, plan, rounds, evaluation.

    Each step is the library call its command makes and each exchange a signed file under OUT. Ends with the
    held-out Dice of the final global model, a plot, and the commands a real federation would run.

    Example: fedseg demo --out fedseg-demo/
    """
    from dataclasses import replace

    from rich.table import Table

    from fedseg.labels import REGIONS
    from fedseg.workflow.demo import PRESETS, run_demo

    settings = PRESETS["fast" if fast else "default"]
    changes = {k: v for k, v in {"sites": sites, "rounds": rounds, "seed": seed}.items() if v is not None}
    settings = replace(settings, **changes)
    err = stderr()
    with err.status("running the demo…") as status:
        result = run_demo(out, settings, device=device, say=lambda m: (status.update(m), err.log(m)))
    console = stdout()
    table = Table(title=f"Final global model (round {settings.rounds}) on held-out test cases")
    table.add_column("site")
    table.add_column("cases", justify="right")
    for region in REGIONS:
        table.add_column(f"Dice {region}", justify="right")
    for site, scores in result.held_out.items():
        table.add_row(site, str(result.settings["test_cases"][site]), *(f"{scores[r]:.3f}" for r in REGIONS))
    mean = result.held_out_mean()
    table.add_row("[bold]all[/]", str(result.held_out_cases), *(f"[bold]{mean[r]:.3f}[/]" for r in REGIONS))
    console.print(table)
    rounds_table = Table(title="Global model per round: validation Dice (pooled over sites)")
    rounds_table.add_column("round", justify="right")
    for region in REGIONS:
        rounds_table.add_column(region, justify="right")
    for point in result.per_round:
        rounds_table.add_row(str(point["round"]), *(f"{point['dice'][r]:.3f}" for r in REGIONS))
    console.print(rounds_table)
    console.print(f"{result.artifacts_verified} signed files verify against {result.plan_path}; "
                  f"ledger of {result.ledger_entries} entries verifies.")
    console.print(f"time: {result.seconds['total']:.0f} s "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items() if k != "total"))
    console.print(f"plot:    {result.plot_path}\nnumbers: {result.json_path}")
    console.print("\nA real federation runs the same steps as separate members:")
    for command in result.commands:
        console.print(f"  {command}", highlight=False, markup=False)

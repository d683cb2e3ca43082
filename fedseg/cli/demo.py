"""`fedseg demo`: three synthetic hospitals run a whole federation; ends with real results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import stderr, stdout
from fedseg.cli._options import (
    DeltaOption,
    DeviceOption,
    MaxGradNormOption,
    PrivacyOption,
    TargetEpsilonOption,
    privacy_config,
)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo makes.")] = Path("fedseg-demo"),
    sites: Annotated[int | None, typer.Option("--sites", help="Number of hospitals (default 3).")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Federated rounds.")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Smallest run that exercises every step (about a minute).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic scans and the model.")] = 0,
    device: DeviceOption = "cpu",
    privacy: PrivacyOption = "off",
    target_epsilon: TargetEpsilonOption = 8.0,
    delta: DeltaOption = 1e-5,
    max_grad_norm: MaxGradNormOption = 1.0,
) -> None:
    """Run a whole federation of synthetic hospitals: synth, preprocess, keys, plan, rounds, evaluation.

    Each step is the library call its command makes and each exchange a signed file under OUT. Ends with the
    held-out Dice of the final global model, a plot, the commands a real federation would run, and the
    `fedseg simulate` command that compares FL with pooled training on the same sites (with its expected
    run time on this machine). With `--privacy dp-sgd|central` the federation trains under differential
    privacy and the demo prints the ε each site (or the federation) spent.

    Example: fedseg demo --out fedseg-demo/
    """
    from dataclasses import replace

    from rich.table import Table

    from fedseg.labels import REGIONS
    from fedseg.workflow.demo import PRESETS, run_demo

    settings = PRESETS["fast" if fast else "default"]
    changes = {k: v for k, v in {"sites": sites, "rounds": rounds, "seed": seed}.items() if v is not None}
    changes["privacy"] = privacy_config(privacy or "off", target_epsilon, delta, max_grad_norm)
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
    if result.privacy:
        console.print(_privacy_line(result.privacy))
    console.print(f"plot:    {result.plot_path}\nnumbers: {result.json_path}")
    console.print("\nA real federation runs the same steps as separate members:")
    for command in result.commands:
        console.print(f"  {command}", highlight=False, markup=False)
    if result.comparison is not None:
        console.print("\nFL against pooled (CDS), incremental (IIL) and cyclic (CIIL) training on these sites, "
                      f"as Sheller et al. 2020 compare them ({result.comparison.describe()}):")
        console.print(f"  {result.comparison.command}", highlight=False, markup=False, soft_wrap=True)


def _privacy_line(record: dict) -> str:
    """Return one line: the privacy mode and the ε spent (per site under dp-sgd, per site-level unit centrally)."""
    delta = record.get("delta")
    if "site_epsilon" in record:
        spent = ", ".join(f"{site} {eps:.2f}" for site, eps in record["site_epsilon"].items())
        return f"privacy: dp-sgd (per patient), ε spent {spent} of {record.get('target_epsilon')} at δ={delta}"
    return (f"privacy: {record.get('mode')} (per site), ε spent {record.get('epsilon', float('nan')):.2f} of "
            f"{record.get('target_epsilon')} at δ={delta}")

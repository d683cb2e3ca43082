"""`fedseg simulate`: federated vs pooled vs incremental vs local training on one machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import print_json, stderr, stdout
from fedseg.cli._options import (
    DeltaOption,
    DeviceOption,
    MaxGradNormOption,
    PrivacyOption,
    TargetEpsilonOption,
    privacy_config,
)


def simulate(
    datasets: Annotated[list[Path], typer.Argument(help="Site dataset folders (from `fedseg preprocess`), one per site.")],
    modes: Annotated[str, typer.Option("--modes", help="Comma-separated: fl, cds, iil, ciil, local.")] = "fl,cds,iil,ciil,local",
    budget: Annotated[str, typer.Option("--budget", help="equal: every mode trains --rounds rounds; converged: each until its validation Dice plateaus.")] = "equal",
    rounds: Annotated[int | None, typer.Option("--rounds", help="Rounds under --budget equal (default 5).", show_default=False)] = None,
    patience: Annotated[int | None, typer.Option("--patience", help="Evaluations without improvement that end a mode under --budget converged (under equal: that mark it plateaued; default 5).", show_default=False)] = None,
    max_rounds: Annotated[int | None, typer.Option("--max-rounds", help="Most rounds a mode trains under --budget converged (default 30).", show_default=False)] = None,
    external: Annotated[list[Path] | None, typer.Option("--external", help="A site dataset outside the federation to score every mode's selected model on (repeatable).", exists=True, file_okay=False)] = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="Take model/training/aggregation settings from this plan (default: sized to the device).", exists=True)] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (rerun with the same folder to resume).")] = Path("simulation"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shared initial model and of training (the first of --seeds).")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="Repeat with N seeds: mean ± sd and a paired Wilcoxon test per case.", min=1)] = 1,
    leave_one_out: Annotated[bool, typer.Option("--leave-one-out", help="Repeat once per site, that site held out and scored as external.")] = False,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps per site per round (default: the plan's).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split that selects each mode's model: val (the test split then reports) or test (selects and reports on the same cases: optimistic).")] = "val",
    device: DeviceOption = "auto",
    privacy: PrivacyOption = None,
    target_epsilon: TargetEpsilonOption = 8.0,
    delta: DeltaOption = 1e-5,
    max_grad_norm: MaxGradNormOption = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON of every number instead of the table.")] = False,
) -> None:
    """Compare federated learning with pooled, incremental, cyclic and local training (Sheller et al. 2020).

    Every mode starts from the same model; `fl` runs the real signed path (updates, screening, aggregation,
    ledger). Models are selected on validation and reported on the test split under both protocols: equal
    budget and converged. Writes OUT/simulation.json and OUT/simulation.png.

    `--privacy` (default: the plan's, off without --plan) trains `fl` under differential privacy; the other
    modes stay the non-private references, so the table shows what privacy costs.

    `--seeds N` (and `--leave-one-out`) run each seed under OUT/seed-N (OUT/without-SITE/seed-N) and write
    OUT/summary.json (mean ± sd, paired tests) and a summary.png of the mean validation curves.

    Example: fedseg simulate site-a/ site-b/ site-c/ --budget converged --external site-d/
    """
    from fedseg.workflow.simulate import Budget, Mode
    from fedseg.workflow.simulate import simulate as run_simulation

    try:
        mode_list = [Mode(m.strip()) for m in modes.split(",") if m.strip()]
    except ValueError:
        raise typer.BadParameter(f"{modes!r}: expected a comma-separated subset of fl, cds, iil, ciil, local",
                                 param_hint="--modes") from None
    if split not in ("val", "test"):
        raise typer.BadParameter(f"{split!r}: expected val or test", param_hint="--split")
    if budget not in {b.value for b in Budget}:
        raise typer.BadParameter(f"{budget!r}: expected equal or converged", param_hint="--budget")
    err = stderr()
    ignored = "--rounds" if budget == "converged" and rounds is not None else (
        "--max-rounds" if budget == "equal" and max_rounds is not None else None)
    if ignored:
        err.print(f"[yellow]warning:[/] {ignored} does not apply under --budget {budget} and is ignored "
                  f"(--budget equal trains --rounds rounds; converged trains at most --max-rounds)")
    if split == "test":
        err.print("[yellow]warning:[/] --split test selects each mode's model on the test cases it then reports: "
                  "the test Dice is optimistic (use it for quick checks; --split val is the paper's protocol)")
    given = {k: v for k, v in (("rounds", rounds), ("max_rounds", max_rounds), ("patience", patience)) if v is not None}
    settings = {"modes": mode_list, **given, "budget": budget,
                "plan": _load(plan), "steps": steps,
                "privacy": privacy_config(privacy, target_epsilon, delta, max_grad_norm) if privacy else None, "split": split, "device": device}
    console = stdout()
    if seeds > 1 or leave_one_out:
        from fedseg.cli._simtable import render_summary
        from fedseg.workflow.simulate.seeds import SUMMARY_FILE, SUMMARY_PLOT, simulate_repeated

        with err.status("simulating…") as status:
            summary = simulate_repeated(datasets, out=out, seeds=seeds, seed=seed, leave_one_out=leave_one_out,
                                        external=external or (), say=lambda m: (status.update(m), err.log(m)),
                                        **settings)
        if as_json:
            print_json(summary)
            return
        render_summary(console, summary)
        console.print(f"numbers: {out / SUMMARY_FILE} (each run under {out}/…/seed-N/)\n"
                      f"plot:    {SUMMARY_PLOT} beside each set of seed-N folders (mean ± sd over seeds)")
        return
    with err.status("simulating…") as status:
        result = run_simulation(datasets, out=out, seed=seed, external=external or (),
                                say=lambda m: (status.update(m), err.log(m)), **settings)
    if as_json:
        print_json(result.to_dict())
        return
    from fedseg.cli._simtable import render_simulation

    render_simulation(console, result.to_dict())
    console.print(f"numbers: {result.json_path}\nplot:    {result.plot_path}")


def _load(plan: Path | None):  # noqa: ANN202 - a Plan, imported lazily
    from fedseg.federation.plan import load_plan

    return load_plan(plan) if plan else None

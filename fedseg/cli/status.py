"""`fedseg status`: rounds x sites of a store-driven federation and each member's last error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedseg.cli._console import print_json, stdout
from fedseg.cli._store import STORE_HELP, open_cli_store

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from fedseg.workflow.store.overview import StoreOverview

_STYLE = {"accepted": "green", "late": "yellow", "missing": "red", "answered": "cyan"}


def status(
    plan: Annotated[Path, typer.Option("--plan", help="The federation plan (plan.toml or its folder).", exists=True)],
    store: Annotated[str, typer.Option("--store", help=STORE_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the overview as JSON.")] = False,
) -> None:
    """Show rounds x sites on the store (published, answered, accepted, rejected and why, late) and last errors.

    Each published global is verified; accepted sites are those its signed manifest names. Below: the
    federated validation curve (the pooled signed site scores of each global, best marked), and once the
    run has ended its signed result and the sites' pooled test score of it.

    Example: fedseg status --plan fed/plan.toml --store sftp://files.example.org/fed/
    """
    from rich.markup import escape
    from rich.table import Table

    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store.overview import store_overview

    overview = store_overview(load_plan(plan), open_cli_store(store))
    if as_json:
        print_json(overview.to_dict())
        return
    table = Table(title=f"{overview.store}")
    for column in ("round", "global", *overview.sites):
        table.add_column(column, no_wrap=True)
    for row in overview.rounds:
        g = "[red]does not verify[/]" if row.error else (row.sha256[:12] if row.sha256 else "—")
        cells = []
        for site in overview.sites:
            cell = row.sites.get(site, "")
            style = "red" if cell.startswith("rejected") else _STYLE.get(cell)
            cells.append(f"[{style}]{escape(cell)}[/]" if style and cell else escape(cell))
        table.add_row(str(row.round), g, *cells)
    console = stdout()
    console.print(table)
    for row in overview.rounds:
        for site, reason in row.reasons.items():
            console.print(f"round {row.round} {escape(site)}: {escape(reason)}", highlight=False)
        if row.error:
            console.print(f"round {row.round} global: {escape(row.error)}", highlight=False)
    _curve(overview, console)
    for member, body in sorted(overview.errors.items()):
        console.print(f"last error of {escape(member)} at {escape(str(body.get('time')))}: "
                      f"{escape(str(body.get('error')))}", highlight=False)


def _dice(point: dict | None) -> str:
    if not point:
        return "—"
    return " / ".join(f"{point['dice'][r]:.3f}" for r in ("WT", "TC", "ET"))


def _curve(overview: StoreOverview, console: Console) -> None:
    """Print the federated validation curve (best marked), the result and the federation's test score."""
    from rich.markup import escape
    from rich.table import Table

    if overview.curve:
        table = Table(title="federated validation (pooled over the sites' signed scores)")
        for column in ("global", "WT / TC / ET", "mean", "cases", "sites reporting", "best"):
            table.add_column(column, no_wrap=True)
        best = overview.best["round"] if overview.best else None
        for p in overview.curve:
            table.add_row(str(p["round"]), _dice(p), f"{p['mean']:.3f}", str(p["cases"]), str(len(p["sites"])),
                          "[green]★ best[/]" if p["round"] == best else "")
        console.print(table)
    if overview.result_error:
        console.print(f"[red]result: {escape(overview.result_error)}[/]", highlight=False)
    if overview.result is not None:
        r = overview.result
        console.print(f"result ({escape(str(r['reason']))}, last global {r['last_round']}): the global of round "
                      f"{r['round']} ({str(r['sha256'])[:12]})", highlight=False)
        test = overview.test or {}
        pooled = test.get("pooled")
        console.print(f"test (WT / TC / ET): {_dice(pooled)}"
                      + (f" over {pooled['cases']} case(s)" if pooled else "")
                      + f"; {len(test.get('answered') or [])} of {len(test.get('expected') or [])} site(s) reported", highlight=False)

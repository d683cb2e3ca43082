"""Render a simulation's report: one table per protocol (test Dice, rounds, steps, FL/CDS) and external sites."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fedseg.labels import REGIONS

__all__ = ["render_simulation"]

_TITLES = {"equal": "Equal budget: every mode after {round} round(s)",
           "converged": "Converged: each mode's best-validation round"}


def _cells(dice: dict[str, Any] | None) -> list[str]:
    return [("—" if dice is None or dice.get(r) is None else f"{dice[r]:.3f}") for r in REGIONS]


def render_simulation(console: Console, result: dict[str, Any]) -> None:
    """Print the protocols of ``result`` (the simulation's JSON) as tables."""
    for protocol, entry in result["protocols"].items():
        modes = entry["modes"]
        has_test = any(e["test"] is not None for e in modes.values())
        split = "test" if has_test else f"{result['config']['split']} (no test split)"
        first = next(iter(modes.values()))
        table = Table(title=f"{_TITLES[protocol].format(round=first['round'])} — {split} Dice, "
                            f"selected on {result['config']['split']}")
        table.add_column("mode")
        for region in REGIONS:
            table.add_column(region, justify="right")
        table.add_column("round", justify="right")
        table.add_column("steps", justify="right")
        if protocol == "converged":
            table.add_column("trained", justify="right")
        for mode, e in modes.items():
            dice = e["test"]["dice"] if has_test else e["val"]
            row = [mode, *_cells(dice), str(e["round"]), str(e["steps"])]
            if protocol == "converged":
                row.append(f"{e['trained_rounds']}{'' if e['plateaued'] else ' (no plateau)'}")
            table.add_row(*row)
        if "fl_over_cds" in entry:
            ratio = entry["fl_over_cds"]
            if not has_test:
                ratio = {r: (modes["fl"]["val"][r] / modes["cds"]["val"][r] if modes["cds"]["val"][r] else None)
                         for r in REGIONS}
            table.add_row("[bold]FL / CDS[/]", *_cells(ratio))
        console.print(table)
        external = {s for e in modes.values() for s in e["external"]}
        if external:
            ext = Table(title=f"{protocol}: the same models on external sites (every case; no part in training)")
            ext.add_column("site")
            ext.add_column("mode")
            for region in REGIONS:
                ext.add_column(region, justify="right")
            for site in sorted(external):
                for mode, e in modes.items():
                    ext.add_row(site, mode, *_cells(e["external"][site]["dice"]))
                if "fl_over_cds_external" in entry:
                    ext.add_row(site, "[bold]FL / CDS[/]", *_cells(entry["fl_over_cds_external"][site]))
            console.print(ext)


def _pm(cell: dict[str, float] | None) -> str:
    return "—" if cell is None else f"{cell['mean']:.3f} ± {cell['sd']:.3f}"


def render_summary(console: Console, summary: dict[str, Any]) -> None:
    """Print a repeated simulation's summary: mean ± sd per mode and region, FL/CDS and the paired tests."""
    for fold, folds in summary.items():
        where = "" if fold == "all" else f" — {fold} held out"
        for protocol in ("equal", "converged"):
            s = folds[protocol]
            table = Table(title=f"{protocol}: test Dice, mean ± sd over seeds {folds['seeds']}{where}")
            table.add_column("mode")
            for region in REGIONS:
                table.add_column(region, justify="right")
            table.add_column("rounds", justify="right")
            table.add_column("steps", justify="right")
            external = sorted({site for m in s["modes"].values() for site in m["external"]})
            for site in external:
                for region in REGIONS:
                    table.add_column(f"{site} {region}", justify="right")
            for mode, m in s["modes"].items():
                test = m["test"] or {}
                table.add_row(mode, *(_pm(test.get(r)) for r in REGIONS), f"{m['rounds']['mean']:.1f}",
                              f"{m['steps']['mean']:.0f}", *(_pm(m["external"][site][r]) for site in external for r in REGIONS))
            if s.get("fl_over_cds") or s.get("fl_over_cds_external"):
                by_site = s.get("fl_over_cds_external") or {}
                table.add_row("[bold]FL / CDS[/]", *_cells(s.get("fl_over_cds") or {}), "", "",
                              *(c for site in external for c in _cells(by_site.get(site) or {})))
            console.print(table)
            for pair, regions in s["paired"].items():
                cells = ", ".join(f"{r} n={t['n']} ({t.get('nonzero', t['n'])} differ) median Δ={_num(t['median_difference'])} "
                                  f"p={_num(t['p'])}"
                                  for r, t in regions.items())
                console.print(f"  {pair.replace('_vs_', ' vs ').upper()} ({folds['paired_test']}): {cells}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"

"""`fedseg plan check`: validate a federation plan and print its hash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import print_json, stdout

app = typer.Typer(help="Validate and summarize federation plans.", no_args_is_help=True)


@app.command("check")
def check(
    plan: Annotated[Path, typer.Argument(help="plan.toml to validate.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate PLAN and print a summary and the plan hash bound into every artifact.

    Example: fedseg plan check fed/plan.toml
    """
    from rich.table import Table

    from fedseg.federation.plan import load_plan
    from fedseg.workflow.privacy_plan import planned_privacy

    loaded = load_plan(plan)
    privacy = planned_privacy(loaded)
    if as_json:
        print_json({"plan": str(plan), "sha256": loaded.sha256, **loaded.to_dict(), "planned_privacy": privacy})
        return
    console = stdout()
    console.print(f"[bold]{loaded.name}[/]  federation {loaded.federation_id}")
    console.print(f"plan sha256: {loaded.sha256}")
    table = Table("role", "member", "key id", "enrolled cases")
    table.add_row("coordinator", loaded.coordinator.id, loaded.coordinator.key_id, "")
    for site in loaded.sites:
        table.add_row("site", site.id, site.key_id, "not recorded" if site.cases is None else str(site.cases))
    console.print(table)
    t, a, m = loaded.training, loaded.aggregation, loaded.model
    console.print(
        f"rounds {loaded.rounds} · strategy {a.strategy.value} · weighting {a.weighting.value} · "
        f"min_sites {a.min_sites} · "
        f"model widths {list(m.widths)} · patch {list(t.patch_size)} · {t.steps_per_round} steps/round · "
        f"spacing {list(loaded.preprocessing.spacing)} mm"
    )
    print_planned_privacy(console, privacy)


def print_planned_privacy(console: Any, privacy: dict[str, Any] | None) -> None:
    """Print each party's planned DP mechanism (nothing with privacy off)."""
    if privacy is None:
        return
    console.print(f"privacy {privacy['mode']}: target ε {privacy['target_epsilon']:g} at δ {privacy['delta']:g} "
                  f"over {privacy['rounds']} round(s)")
    for who, n in (privacy.get("sites") or {"coordinator": privacy["coordinator"]}).items():
        console.print(f"  {who}: noise multiplier {n['noise_multiplier']:.4f}, clip {n['clip']:g}, sampling rate "
                      f"{n['sampling_rate']:.4f}, {n['steps']} steps, ε {n['epsilon']:.3f}")

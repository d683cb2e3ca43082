"""`fedseg aggregate`: screen a round's signed updates and write the next signed global model."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedseg.cli._console import print_json, stderr, stdout
from fedseg.cli.keys import passphrase_from_env
from fedseg.configs.aggregation import Strategy
from fedseg.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from fedseg.workflow.coordinator.aggregate import AggregateReport


def _table(report: AggregateReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"round {report.round} · {report.strategy} · quorum {report.min_sites}")
    private = report.privacy is not None
    numeric = ("examples", "weight", "norm", "cosine", *(("ε",) if private else ()))
    for column in ("site", *numeric, "verdict"):
        table.add_column(column, justify="right" if column in numeric else "left", no_wrap=True)
    table.add_column("reason", overflow="fold", min_width=20)
    for v in report.verdicts:
        site = v.site or (f"? (claims {v.claimed_site})" if v.claimed_site else "?")
        verdict = "[green]accepted[/]" if v.accepted else "[red]rejected[/]"
        table.add_row(escape(site), "" if v.num_examples is None else str(v.num_examples),
                      f"{v.weight:.3f}" if v.accepted and v.weight is not None else "",
                      "" if v.norm is None else f"{v.norm:.4g}", "" if v.cosine is None else f"{v.cosine:.3f}",
                      *((_epsilon(report, v),) if private else ()), verdict, escape(str(v.reason)) if v.reason else "")
    stdout().print(table)
    if report.privacy is not None and report.privacy.get("mode") == "central":
        p = report.privacy
        stdout().print(f"central DP: every site's ε = {p['epsilon']:.3f} of {p['target_epsilon']:g} after round "
                       f"{report.round} (δ = {p['delta']:g}, noise multiplier {p['noise_multiplier']:.4f}, "
                       f"clip {p['clip']:g})")
    for note in report.notes:
        stderr().print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _epsilon(report: AggregateReport, v: object) -> str:
    """Return the ε column: the site's own (dp-sgd) or the round's site-level ε (central, accepted sites)."""
    assert report.privacy is not None
    if report.privacy.get("mode") == "central":
        return f"{report.privacy['epsilon']:.3f}" if getattr(v, "accepted", False) else ""
    eps = getattr(v, "epsilon", None)
    return "" if eps is None else f"{eps:.3f}"


def _summary(report: AggregateReport) -> None:
    console = stdout()
    if report.status == "written":
        console.print(f"wrote {report.out} (round {report.round}, sha256 {report.digest}) from "
                      f"{len(report.accepted)} update(s); ledger {report.ledger}")
    elif report.status == "already-aggregated":
        console.print(f"already aggregated: {report.out} (round {report.round}, sha256 {report.digest}) is in "
                      f"the ledger; nothing appended")
    elif report.status == "dry-run":
        console.print(f"dry run: {len(report.accepted)} of {len(report.verdicts)} update(s) would be aggregated; "
                      "nothing written")
    if report.validation and report.best:
        v, b = report.validation, report.best
        console.print(f"federated validation of global {v['round']} (the sites' signed scores, {v['cases']} case(s)): "
                      f"WT {v['dice']['WT']:.3f} / TC {v['dice']['TC']:.3f} / ET {v['dice']['ET']:.3f}; best so far: "
                      f"global {b['round']} (mean {b['mean']:.3f}); the whole curve: `--json` or `fedseg status`",
                      highlight=False)


def aggregate(
    updates: Annotated[list[Path], typer.Argument(help="Update files (.fedseg) from the sites for this round.")],
    plan: Annotated[Path, typer.Option("--plan", help="The federation plan (plan.toml or its folder).", exists=True)],
    global_: Annotated[Path, typer.Option("--global", help="The current global model the updates trained from.",
                                          exists=True, dir_okay=False)],
    key: Annotated[Path, typer.Option("--key", help="Coordinator's private key (signs the next global).",
                                      exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Where to write the next global, e.g. fed/global-r0001.fedseg.")],
    strategy: Annotated[Strategy | None, typer.Option("--strategy", help="Override the plan's strategy.")] = None,
    min_sites: Annotated[int | None, typer.Option("--min-sites", help="Raise the plan's quorum for this round (never lower it).", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Screen and report only; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table (with the federated validation: `validation`, `curve`, `best`).")] = False,
    ledger: Annotated[Path | None, typer.Option("--ledger", help="Coordinator ledger (default: ledger.jsonl beside --out).")] = None,
    timestamp: Annotated[str | None, typer.Option("--timestamp", help="created_at of the global, ISO 8601 UTC (default: the latest accepted update's).")] = None,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the key's passphrase.")] = None,
) -> None:
    """Screen a round's signed updates and write the next signed global model (exit 1 below quorum).

    Every update is verified and screened (signature, plan, round, parent, one per site, tensors, example
    count bounded by the site's enrolled cases, norm and direction outliers) before any is used; a table
    shows each verdict, weight and reason. The sites' signed scores of the global they trained from (their
    federated validation) are recorded, and the line after the table gives it and the best global so far.

    Example: fedseg aggregate --plan fed/plan.toml --global fed/global-r0000.fedseg --key coord.key site-a-r0001.fedseg site-b-r0001.fedseg --out fed/global-r0001.fedseg
    """
    from fedseg.federation.keys import load_private_key
    from fedseg.federation.manifest import parse_timestamp
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.coordinator.aggregate import QuorumError, aggregate_round

    stamp: datetime | None = None
    if timestamp is not None:
        stamp = parse_timestamp(timestamp)
        if stamp is None:
            raise ConfigError(f"--timestamp {timestamp!r}: expected ISO 8601 with a timezone, e.g. 2024-05-01T12:00:00Z")
    loaded_plan = load_plan(plan)
    signing_key = None if dry_run else load_private_key(key, passphrase_from_env(passphrase_env))
    try:
        report = aggregate_round(plan=loaded_plan, global_path=global_, key=signing_key, update_paths=updates,
                                 out=out, strategy=strategy, min_sites=min_sites, dry_run=dry_run,
                                 ledger_path=ledger, timestamp=stamp)
    except QuorumError as exc:
        if as_json:
            print_json(exc.report.to_dict())
        else:
            _table(exc.report)
        raise
    if as_json:
        print_json(report.to_dict())
        return
    _table(report)
    _summary(report)
    if report.status == "already-aggregated":
        stderr().print("[yellow]note:[/] this round was already aggregated with the same result", highlight=False)

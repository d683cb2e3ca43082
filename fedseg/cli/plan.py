"""`fedseg plan check` and `fedseg plan update`: validate a plan (and its signed chain), make the next version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import print_json, stdout
from fedseg.cli.keys import passphrase_from_env

app = typer.Typer(help="Validate and summarize federation plans; sign plan updates (the plan chain).",
                  no_args_is_help=True)


def _load(plans: list[Path]) -> Any:
    from fedseg.federation.plan import load_plan
    from fedseg.federation.plan_chain import load_chain_files

    if len(plans) == 1:
        return load_plan(plans[0])
    return load_chain_files(plans[0], plans[1:])


@app.command("check")
def check(
    plans: Annotated[list[Path], typer.Argument(
        help="plan.toml (its signed updates plan-vNNNN.toml beside it are verified too), a plan folder, one "
             "update file, or the root followed by update files.", exists=True)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate a plan and its signed chain from the root; print the chain, a summary and the plan hash.

    The chain table lists every version: its hash, the previous version's hash, who signed it, what it
    changed and the round from which it governs. Any version that does not verify stops with its reason.

    Example: fedseg plan check fed/plan.toml
    """
    from rich.table import Table

    from fedseg.federation.plan_update import chain_rows
    from fedseg.workflow.privacy_plan import planned_privacy

    loaded = _load(plans)
    privacy = planned_privacy(loaded)
    rows = chain_rows(loaded)
    if as_json:
        print_json({"plan": str(plans[0]), "sha256": loaded.sha256, "version": loaded.version, **loaded.to_dict(),
                    "planned_privacy": privacy, "chain": rows})
        return
    console = stdout()
    if len(rows) > 1:
        chain = Table("version", "sha256", "previous", "signed by", "changes", "from round", title="plan chain")
        for row in rows:
            chain.add_row(str(row["version"]), row["sha256"][:12], (row["previous_sha256"] or "—")[:12],
                          row["signer"], "; ".join(row["changes"]), str(row["from_round"]))
        console.print(chain)
    console.print(f"[bold]{loaded.name}[/]  federation {loaded.federation_id}")
    console.print(f"plan v{loaded.version} sha256: {loaded.sha256}")
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


def _pair(value: str, option: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise typer.BadParameter(f"{option} {value!r}: expected NAME=VALUE")
    return name, rest


def _setting(value: str) -> tuple[str, Any]:
    """Parse ``section.key=value``: the value as a TOML literal (7, 0.5, true, [1, 2]), else as a string."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    name, raw = _pair(value, "--set")
    try:
        return name, tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return name, raw


@app.command("update")
def update(
    plan: Annotated[Path, typer.Option("--plan", help="The current plan (plan.toml or its folder; the newest "
                                       "version of its chain is updated).", exists=True)],
    key: Annotated[Path, typer.Option("--key", help="The current coordinator's private key (signs the new version).",
                                      exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Where to write the new version: the plan folder, or a file "
                                      "named plan-vNNNN.toml there.")],
    from_round: Annotated[int, typer.Option("--from-round", min=1, help="The first round whose updates and global "
                                            "the new version governs (a revocation takes effect from it).")],
    add_site: Annotated[list[str] | None, typer.Option("--add-site", help="A joining site, ID=PUBFILE[:CASES]; "
                                                       "repeatable.")] = None,
    remove_site: Annotated[list[str] | None, typer.Option("--remove-site", help="A leaving site ID; repeatable.")] = None,
    rotate_site: Annotated[list[str] | None, typer.Option("--rotate-site", help="A site's new key, ID=PUBFILE; "
                                                          "repeatable.")] = None,
    revoke: Annotated[list[str] | None, typer.Option("--revoke", help="A key id refused from --from-round on (a "
                                                     "lost laptop); its site leaves unless also rotated.")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", min=1, help="The new total number of rounds.")] = None,
    setting: Annotated[list[str] | None, typer.Option("--set", help="A setting, SECTION.KEY=VALUE, e.g. "
                                                      "training.steps_per_round=200; repeatable.")] = None,
    new_coordinator_key: Annotated[Path | None, typer.Option("--new-coordinator-key", help="The coordinator's new "
                                   "public key (.pub); the old key signs this version, the new one every later one.",
                                   exists=True, dir_okay=False)] = None,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the key's "
                                                       "passphrase.")] = None,
) -> None:
    """Sign the next version of the plan: a site joins or leaves, a key is rotated or revoked, rounds or a setting change.

    The new version names the current version's hash and is signed by the current coordinator key;
    sites and the coordinator accept it only after verifying the chain from the plan.toml they trust.
    Put the file beside plan.toml (the store loops publish it on the store themselves).

    Example: fedseg plan update --plan fed/plan.toml --key coord.key --add-site site-d=site-d.pub:40 --from-round 3 --out fed/
    """
    from fedseg.federation.keys import load_private_key, load_public_key
    from fedseg.federation.plan import load_plan
    from fedseg.federation.plan_update import PlanChanges, describe_changes, write_next_plan
    from fedseg.workflow.init import parse_site_option

    adds = tuple((sid, load_public_key(pub), cases) for sid, pub, cases in map(parse_site_option, add_site or []))
    rotations = tuple((sid, load_public_key(Path(pub))) for sid, pub in (_pair(v, "--rotate-site") for v in rotate_site or []))
    changes = PlanChanges(
        from_round=from_round, add_sites=adds, remove_sites=tuple(remove_site or ()), rotate_sites=rotations,
        revoke=tuple(revoke or ()), rounds=rounds, settings=tuple(_setting(v) for v in setting or ()),
        coordinator_key=load_public_key(new_coordinator_key) if new_coordinator_key else None)
    current = load_plan(plan)
    nxt, path = write_next_plan(current, load_private_key(key, passphrase_from_env(passphrase_env)), changes, out)
    console = stdout()
    console.print(f"wrote plan v{nxt.version} ({nxt.sha256}) to {path}; it governs rounds from {nxt.from_round} on")
    for line in describe_changes(current.versions[-1], nxt):
        console.print(f"  {line}")

"""`fedseg coordinator run`: the coordinator's unattended rounds over a shared store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import print_json, stdout
from fedseg.cli._store import STORE_HELP, log_to_stderr, open_cli_store
from fedseg.cli.keys import passphrase_from_env

app = typer.Typer(help="The coordinator's unattended rounds over a store.", no_args_is_help=True)


@app.command("run")
def run(
    plan: Annotated[Path, typer.Option("--plan", help="The federation plan (plan.toml or its folder).", exists=True)],
    key: Annotated[Path, typer.Option("--key", help="The coordinator's private key (signs the globals).", exists=True, dir_okay=False)],
    store: Annotated[str, typer.Option("--store", help=STORE_HELP)],
    work: Annotated[Path | None, typer.Option("--work", help="Local work folder: globals, ledger, frozen rounds (default: ./.fedseg-coordinator).")] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between looks at the store.", min=0.0)] = 10.0,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the key's passphrase.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Publish round 0, then close, screen, aggregate and publish every round until the federation ends.

    It ends with the signed result (final/result.json, naming the best global): after the plan's last
    round once the sites scored its global, or earlier when the federated validation plateaus (early stop).

    A round closes when every site answered, or when the plan's aggregation.round_deadline (seconds) has
    passed and min_sites answered; it is aggregated exactly as `fedseg aggregate` does. Late updates are
    recorded, never used. A killed run continues where it stopped; a second coordinator cannot publish
    over the first.

    Example: fedseg coordinator run --plan fed/plan.toml --key coord.key --store s3://hospital-fl/brats/
    """
    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store.coordinator_loop import run_coordinator

    log_to_stderr()
    the_plan = load_plan(plan)
    the_key = load_private_key(key, passphrase_from_env(passphrase_env))
    folder = work if work is not None else Path(".fedseg-coordinator")
    result = run_coordinator(the_plan, key=the_key, store=open_cli_store(store), work=folder, poll=poll)
    if as_json:
        print_json({"published": result.published, "final_round": result.final_round,
                    "late": [{"round": r, "site": s} for r, s in result.late], "result": result.result})
        return
    stdout().print(f"federation finished: the global of round {result.final_round} is published "
                   f"({len(result.late)} late update(s) recorded)")
    if result.result is not None:
        r = result.result
        stdout().print(f"result ({r['reason']}): the global of round {r['round']} ({str(r['sha256'])[:12]}), "
                       "signed in final/result.json")

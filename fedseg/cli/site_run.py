"""`fedseg site run`: this site's unattended rounds over a shared store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import print_json, stdout
from fedseg.cli._options import DeviceOption
from fedseg.cli._store import STORE_HELP, log_to_stderr, open_cli_store
from fedseg.cli.keys import passphrase_from_env

app = typer.Typer(help="A site's unattended rounds over a store.", no_args_is_help=True)


def default_work(plan: Any, key: Any, store: Any) -> Path:
    """Return ``./.fedseg-SITE`` for the site holding ``key`` in the chain, with the store's plan versions.

    A site that joins in a plan update, or whose key was rotated, is listed only in a version on the
    store: those are fetched (and verified) into a temporary folder to find its id.
    """
    import tempfile

    from fedseg.errors import PlanError
    from fedseg.workflow.site.received import site_in_chain
    from fedseg.workflow.store.plan_sync import fetch_plans

    try:
        return Path(f".fedseg-{site_in_chain(plan, key).id}")
    except PlanError:
        with tempfile.TemporaryDirectory(prefix="fedseg-plans-") as folder:
            chain = fetch_plans(store, plan, Path(folder))
        return Path(f".fedseg-{site_in_chain(chain, key).id}")


@app.command("run")
def run(
    plan: Annotated[Path, typer.Option("--plan", help="The federation plan (plan.toml or its folder).", exists=True)],
    data: Annotated[Path, typer.Option("--data", help="This site's dataset (made by `fedseg preprocess`).", exists=True, file_okay=False)],
    key: Annotated[Path, typer.Option("--key", help="This site's private key (signs the updates).", exists=True, dir_okay=False)],
    store: Annotated[str, typer.Option("--store", help=STORE_HELP)],
    work: Annotated[Path | None, typer.Option("--work", help="Local work folder: site state, globals, checkpoints, updates (default: ./.fedseg-SITE).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Do at most one round, then exit (for cron or a scheduler).")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between looks at the store.", min=0.0)] = 10.0,
    device: DeviceOption = "auto",
    state: Annotated[Path | None, typer.Option("--state", help="Site state file: the last accepted global per federation (default: DATA/.fedseg/state-<federation-id>.json, shared with train-local).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for torch (default: torch's choice).", min=1)] = None,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the key's passphrase.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Wait for each global on the store, verify it, train, upload the signed update, until the federation ends.

    It ends when the coordinator's signed result is on the store (after the last round, or earlier on an
    early stop) and this site has scored the result's global on its test split. Every global is verified as `fedseg train-local` verifies it (signature, plan, round, expiry; only the
    next round is accepted). A killed run continues where it stopped when started again.

    Example: fedseg site run --plan fed/plan.toml --data site-a-data/ --key site-a.key --store sftp://files.example.org/fed/
    """
    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store.site_loop import run_site

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    log_to_stderr()
    the_plan = load_plan(plan)
    the_key = load_private_key(key, passphrase_from_env(passphrase_env))
    the_store = open_cli_store(store)
    folder = work if work is not None else default_work(the_plan, the_key, the_store)
    result = run_site(the_plan, data=data, key=the_key, store=the_store, work=folder, once=once,
                      poll=poll, device=device, state_path=state)
    if as_json:
        body = {"site": result.site, "trained": result.trained, "finished": result.finished,
                "last_global": result.last_global}
        print_json(body if result.test_score is None else {**body, "test_score": result.test_score})
        return
    done = ", ".join(str(r) for r in result.trained) or "none"
    state = "federation finished" if result.finished else f"last global accepted: {result.last_global}"
    stdout().print(f"{result.site}: trained round(s) {done}; {state}")
    if result.test_score is not None:
        t = result.test_score
        dice = " ".join(f"{r} {v:.3f}" for r, v in (t["dice"] or {}).items()) or "no labelled test case"
        stdout().print(f"the federation's result (round {t['global_round']}) on {t['cases']} test case(s): {dice}")

"""The ``fedseg`` command: every command is registered here, in one place.

Command modules import only typer/rich at import time and the library inside their functions, so
``fedseg --help`` never pays for torch, SimpleITK, h5py or scipy.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from fedseg.cli import (
    aggregate,
    coordinator_run,
    demo,
    evaluate,
    export,
    init,
    inspect,
    keys,
    plan,
    predict,
    preprocess,
    simulate,
    site_run,
    status,
    synth,
    train_local,
)
from fedseg.cli._console import error_line
from fedseg.errors import FedsegError

__all__ = ["app", "main"]


class _FedsegGroup(TyperGroup):
    """Turn library errors into one red line on stderr and exit code 1 (usage errors stay exit 2)."""

    def invoke(self, ctx: Any) -> Any:
        # Busy-waiting OpenMP threads make torch 10-100x slower on a shared or small CPU; it must be set
        # before torch is first imported, which happens inside the commands.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            return super().invoke(ctx)
        except FedsegError as exc:
            error_line(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error_line("interrupted; finished files are kept, partial files were discarded")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_FedsegGroup,
    name="fedseg",
    help="Federated brain-tumour segmentation: preprocess, train locally, aggregate signed weights, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a signing key may sit in a local variable
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)

app.add_typer(keys.app, name="keys")
app.command("init")(init.init)
app.add_typer(plan.app, name="plan")
app.command("synth")(synth.synth)
app.command("preprocess")(preprocess.preprocess)
app.command("train-local")(train_local.train_local)
app.command("export")(export.export)
app.command("aggregate")(aggregate.aggregate)
app.command("predict")(predict.predict)
app.command("evaluate")(evaluate.evaluate)
app.command("inspect")(inspect.inspect)
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)
app.add_typer(site_run.app, name="site")
app.add_typer(coordinator_run.app, name="coordinator")
app.command("status")(status.status)


def main() -> None:
    """Run the CLI (the ``fedseg`` console script and ``python -m fedseg``)."""
    sys.exit(app())

"""`fedseg train-local`: train the received global model on this site's data and export a signed update."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import print_json, stderr, stdout
from fedseg.cli._options import DeviceOption
from fedseg.cli.keys import passphrase_from_env


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def dice_table(before: dict[str, float] | None, after: dict[str, float] | None, title: str) -> Any:
    """Return a rich table of before/after validation Dice per region."""
    from rich.table import Table

    from fedseg.labels import REGIONS

    table = Table(title=title)
    for column in ("region", "Dice before", "Dice after", "change"):
        table.add_column(column, justify="left" if column == "region" else "right")
    for region in REGIONS:
        b = before.get(region) if before else None
        a = after.get(region) if after else None
        change = f"{a - b:+.4f}" if a is not None and b is not None else "—"
        table.add_row(region, _fmt(b), _fmt(a), change)
    return table


class _Display:
    """A rich progress display on stderr fed by the library's Phase and StepInfo events."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                 console=stderr(), disable=not enabled, transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Display:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, event: Any) -> None:
        from fedseg.train.loop import Phase, StepInfo

        if isinstance(event, StepInfo):
            task = self.tasks.get("train")
            if task is None:
                task = self.tasks["train"] = self.progress.add_task("train", total=event.total, info="")
            info = f"loss {event.loss:.4f}  {event.patches_per_s:.2f} patches/s  data wait {event.data_wait_share:.0%}"
            self.progress.update(task, completed=event.step, info=info)
        elif isinstance(event, Phase):
            task = self.tasks.get(event.name)
            if task is None:
                task = self.tasks[event.name] = self.progress.add_task(event.name, total=max(event.total, 1), info="")
            self.progress.update(task, completed=event.done, total=max(event.total, 1))


def train_local(
    plan: Annotated[Path, typer.Option("--plan", help="The federation plan (plan.toml or its folder).", exists=True)],
    global_model: Annotated[Path, typer.Option("--global", help="The received global model (.fedseg).", exists=True, dir_okay=False)],
    data: Annotated[Path, typer.Option("--data", help="This site's dataset (made by `fedseg preprocess`).", exists=True, file_okay=False)],
    key: Annotated[Path, typer.Option("--key", help="This site's private key (signs the update).", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="The update file to write, e.g. site-a-r0001.fedseg.")],
    epochs: Annotated[int | None, typer.Option("--epochs", help="Train this many epochs (ceil(train cases / batch) steps each).", min=1)] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Train this many optimizer steps (default: the plan's steps_per_round).", min=1)] = None,
    device: DeviceOption = "auto",
    no_export: Annotated[bool, typer.Option("--no-export", help="Keep the checkpoint only; sign it later with `fedseg export`.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint folder.")] = False,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Checkpoint folder (default: OUT.ckpt/).")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="Site state file: the last accepted global per federation (default: DATA/.fedseg/state-<federation-id>.json, shared by every command of the site).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for torch (default: torch's choice).", min=1)] = None,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the key's passphrase.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train the received global model on this site's data and export a signed update.

    Verifies the global (plan, signature, round), validates it, trains, validates again, keeps a
    checkpoint folder and signs the update unless --no-export.

    Example: fedseg train-local --plan fed/plan.toml --global fed/global-r0000.fedseg --data site-a-data/ --key site-a.key --out site-a-r0001.fedseg
    """
    if steps is not None and epochs is not None:
        raise typer.BadParameter("give either --steps or --epochs, not both")
    import torch

    from fedseg.federation.keys import load_private_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.site.train import train_local as run

    if threads is not None:
        torch.set_num_threads(threads)
    the_plan = load_plan(plan)
    the_key = load_private_key(key, passphrase_from_env(passphrase_env))
    with _Display(enabled=not as_json) as display:
        result = run(the_plan, global_model, data, the_key, out, steps=steps, epochs=epochs, device=device,
                     export=not no_export, resume=resume, state_path=state, checkpoint_dir=checkpoint,
                     progress=display)
    if as_json:
        print_json({
            "site": result.site, "round": result.round, "steps": result.steps, "num_examples": result.num_examples,
            "train_loss": result.train_loss, "val_dice_before": result.val_dice_before,
            "val_dice_after": result.val_dice_after, "seconds": result.seconds,
            "checkpoint": str(result.checkpoint_dir),
            "update": str(result.update_path) if result.update_path else None, "privacy": result.privacy,
        })
        return
    console = stdout()
    console.print(dice_table(result.val_dice_before, result.val_dice_after,
                             f"{result.site}, round {result.round}: validation Dice"))
    console.print(f"steps {result.steps}, final loss {result.train_loss:.4f}, {result.seconds:.1f} s, "
                  f"{result.num_examples} training case(s)")
    if result.privacy is not None:
        p = result.privacy
        console.print(f"privacy: ε = {p['epsilon']:.3f} of {p['target_epsilon']:g} spent (δ = {p['delta']:g}); "
                      f"DP-SGD noise multiplier {p['noise_multiplier']:.4f}, clip {p['clip']:g}, "
                      f"sampling rate {p['sampling_rate']:.4f}, {p['steps']} steps")
    console.print(f"checkpoint: {result.checkpoint_dir}")
    if result.update_path is not None:
        console.print(f"update:     {result.update_path}")
    else:
        console.print(f"not exported; review, then: fedseg export {result.checkpoint_dir} --plan {plan} "
                      f"--key {key} --out {out}")

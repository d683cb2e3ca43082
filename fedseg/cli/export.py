"""`fedseg export`: sign a local checkpoint as an update, or take a global model out as safetensors/TorchScript."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import stdout
from fedseg.cli.keys import passphrase_from_env
from fedseg.federation.manifest import DType
from fedseg.federation.manifest import WeightsKind as Weights


class Format(str, enum.Enum):
    SAFETENSORS = "safetensors"
    TORCHSCRIPT = "torchscript"


def export(
    plan: Annotated[Path, typer.Option("--plan", help="The federation plan (plan.toml or its folder).", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    checkpoint: Annotated[Path | None, typer.Argument(help="A checkpoint folder written by train-local.", exists=True, file_okay=False)] = None,
    key: Annotated[Path | None, typer.Option("--key", help="This site's private key (checkpoint export).", exists=True, dir_okay=False)] = None,
    dtype: Annotated[DType, typer.Option("--dtype", help="Precision of the exported weights.")] = DType.FLOAT32,
    weights: Annotated[Weights, typer.Option("--weights", help="full weights, or delta = local - global.")] = Weights.FULL,
    model: Annotated[Path | None, typer.Option("--model", help="A global model (.fedseg) to export for other tools.", exists=True, dir_okay=False)] = None,
    format: Annotated[Format, typer.Option("--format", help="Format of --model export.")] = Format.SAFETENSORS,
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Env var holding the key's passphrase.")] = None,
) -> None:
    """Sign a local checkpoint as an update, or export a verified global model as safetensors/TorchScript.

    With CHECKPOINT: review the metrics in CHECKPOINT/checkpoint.json first, then sign them and the
    weights into an update. With --model: write the model and OUT.json (its config) for other tools.

    Example: fedseg export site-a-r0001.fedseg.ckpt --plan fed/plan.toml --key site-a.key --out site-a-r0001.fedseg
    """
    if (checkpoint is None) == (model is None):
        raise typer.BadParameter("give either a CHECKPOINT folder or --model GLOBAL.fedseg")
    from fedseg.federation.plan import load_plan

    the_plan = load_plan(plan)
    console = stdout()
    if model is not None:
        from fedseg.workflow.model_export import export_global

        written = export_global(model, the_plan, out, format=format.value)
        console.print(f"model:  {written}  ({format.value})")
        console.print(f"config: {written.with_name(written.name + '.json')}")
        return
    if key is None:
        raise typer.BadParameter("exporting a checkpoint needs --key (the site's private key signs the update)")
    from fedseg.federation.keys import load_private_key
    from fedseg.workflow.site.export import export_update

    the_key = load_private_key(key, passphrase_from_env(passphrase_env))
    assert checkpoint is not None
    written = export_update(checkpoint, the_plan, the_key, out, dtype=dtype.value, weights=weights.value)
    console.print(f"update: {written}  ({weights.value} weights, {dtype.value})")

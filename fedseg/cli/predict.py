"""`fedseg predict`: segment raw scans or a site dataset with a verified global model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import case_progress, error_line, print_json, stderr, stdout
from fedseg.cli._options import DeviceOption
from fedseg.labels import REGIONS

__all__ = ["predict"]


def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Raw case folders (any layout preprocess accepts), CSVs, or site datasets.")],
    plan_path: Annotated[Path, typer.Option("--plan", exists=True, help="The federation plan (plan.toml or its folder).")],
    model_path: Annotated[Path, typer.Option("--model", exists=True, dir_okay=False, help="A global model file (.fedseg).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <ID>.nii.gz label maps (created if missing).")],
    device: DeviceOption = "auto",
    tta: Annotated[bool, typer.Option("--tta", help="Mirroring test-time augmentation (8 flips; ~8x slower).")] = False,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Also write <ID>_probs.nii.gz (4D: WT, TC, ET).")] = False,
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, max=0.95, help="Overlap of neighbouring windows.")] = 0.5,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, max=256, help="Windows per forward pass (default: four 32³ windows' worth, one of 64³ or more).")] = None,
    min_component: Annotated[int, typer.Option("--min-component", min=0, help="Drop tumour components smaller than this many voxels (original grid).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the per-case results as JSON instead of a table.")] = False,
) -> None:
    """Segment scans with a verified global model; write label maps on each scan's original grid.

    The model is verified against the plan first: nothing is written for a model that fails. Cases
    already predicted in --out are skipped, so an interrupted run can simply be started again.

    Example: fedseg predict --plan fed/plan.toml --model fed/global-r0010.fedseg raw/case-017/ --out seg/
    """

    from fedseg.device import resolve_device
    from fedseg.federation.plan import load_plan
    from fedseg.inference.predict import PredictOptions, predict_cases
    from fedseg.workflow.model_io import inference_spec, load_global_model
    from fedseg.workflow.predict_inputs import collect_inputs, refuse_output_among_inputs

    if out.exists() and not out.is_dir():
        error_line(f"{out}: the output folder is a file; expected a folder (or a path to create)")
        raise typer.Exit(1)
    refuse_output_among_inputs(out, inputs, plan=plan_path, model=model_path)
    options = PredictOptions(device=device, mirror=tta, overlap=overlap, batch_size=batch_size,
                             min_component_voxels=min_component, probabilities=probabilities)
    plan = load_plan(plan_path)
    dev = resolve_device(options.device)
    model = load_global_model(plan, model_path, dev)  # verified before anything is written
    spec = inference_spec(plan)
    cases = collect_inputs(inputs, spec)
    err = stderr()
    err.print(f"predicting {len(cases)} case(s) on {dev} with {model_path.name}", highlight=False)
    with case_progress("{task.description}", console=err) as progress:
        task = progress.add_task("predicting", total=len(cases))
        outcomes = predict_cases(model, spec, cases, out, options,
                                 on_case=lambda o: progress.update(task, advance=1, description=o.case_id))
    if json_out:
        print_json([_as_dict(o) for o in outcomes])
    else:
        _render(outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        error_line(f"case {o.case_id}: {o.error}")
    if failed:
        error_line(f"{len(failed)} of {len(outcomes)} case(s) failed; the others were written to {out}")
        raise typer.Exit(1)


def _as_dict(outcome: Any) -> dict[str, Any]:
    return {"case": outcome.case_id, "status": outcome.status,
            "label": str(outcome.label_path) if outcome.label_path else None,
            "volumes_ml": outcome.volumes_ml, "seconds": outcome.seconds, "error": outcome.error}


def _render(outcomes: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="Predicted tumour volumes (ml)", title_justify="left")
    for name, justify in (("case", "left"), ("status", "left"), *((r, "right") for r in REGIONS), ("seconds", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for o in outcomes:
        vols = [f"{o.volumes_ml[r]:.2f}" if r in o.volumes_ml else "-" for r in REGIONS]
        table.add_row(o.case_id, o.status, *vols, f"{o.seconds:.1f}")
    stdout().print(table)

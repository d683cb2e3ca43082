"""`fedseg preprocess`: raw MRI cases -> a site dataset (progress on stderr, result table on stdout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import error_line, print_json, stderr, stdout
from fedseg.labels import LabelConvention, Layout

# The CLI lists the choices without importing the library (which pulls numpy) at import time.
_SKULL_STRIP = ("auto", "none", "classic", "deepbet", "hd-bet")
_SEQUENCES = ("t1", "t1ce", "t2", "flair")  # fedseg.labels.MODALITIES


def _spacing(text: str) -> tuple[float, float, float]:
    """Parse ``--spacing``: one number (isotropic) or three ``x,y,z``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected a number of mm or x,y,z, got {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise typer.BadParameter(f"expected one number or three (x,y,z), got {len(values)}")
    return values[0], values[1], values[2]


def _strip_cell(qc: dict[str, Any]) -> str:
    method = str(qc.get("skull_strip", ""))
    return f"[yellow]{method} (fallback)[/]" if "fell back" in str(qc.get("skull_strip_reason", "")) else method


def _registration_cell(reg: dict[str, Any]) -> str:
    failed = [m for m, r in reg.items() if r.get("failed")]
    done = {m: r for m, r in reg.items() if not r.get("skipped") and not r.get("failed")}
    if failed:
        return f"[red]failed: {', '.join(failed)}[/]"
    if not done:
        return "skipped (same grid)" if reg else "-"
    worst_rot = max(r["rotation_deg"] for r in done.values())
    worst_mm = max(r["translation_mm"] for r in done.values())
    ok = all(r["converged"] for r in done.values())
    return f"{len(done)} reg, <= {worst_rot:.1f}° {worst_mm:.1f} mm" + ("" if ok else " [red]not converged[/]")


def preprocess(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Raw cases: a folder (BraTS or nnU-Net layout) or a CSV file.")],
    out: Annotated[Path, typer.Option("--out", help="Site dataset folder to create or update.")],
    spacing: Annotated[str | None, typer.Option("--spacing", help="Target voxel spacing in mm: one number or x,y,z.")] = None,
    skull_strip: Annotated[str | None, typer.Option("--skull-strip", help=f"Skull stripping: {', '.join(_SKULL_STRIP)}.")] = None,
    n4: Annotated[bool, typer.Option("--n4", help="Apply N4 bias-field correction.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Cases processed in parallel.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Redo cases whose inputs and settings are unchanged.")] = False,
    layout: Annotated[Layout, typer.Option("--layout", help="Force the input layout.", case_sensitive=False)] = Layout.AUTO,
    labels: Annotated[LabelConvention, typer.Option(
        "--labels", help="Label convention of the raw label maps (auto: decided once over the whole dataset).",
        case_sensitive=False)] = LabelConvention.AUTO,
    plan: Annotated[Path | None, typer.Option("--plan", help="Take the preprocessing settings from this plan.toml.",
                                              exists=True, dir_okay=False)] = None,
    label_on: Annotated[str | None, typer.Option(
        "--label-on", metavar="SEQ",
        help=f"Sequence the label maps were drawn on ({', '.join(_SEQUENCES)}) where several share the label's grid; "
             "a label on another sequence's grid is mapped through that sequence's registration. Default: "
             "t1ce, then t1, t2, flair.")] = None,
    accept: Annotated[list[str] | None, typer.Option("--accept", metavar="CASE_ID",
                                                     help="Accept a flagged case after review (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Preprocess raw MRI cases into a site dataset: register, resample, skull-strip, normalize, crop.

    A case the QC gate finds implausible is written but flagged, and not used for training, validation
    or evaluation until accepted with --accept CASE_ID (or "accepted": true on its dataset.json entry).

    A label map may lie on any sequence's native grid (drawn on FLAIR, say): it is mapped to the stored
    grid through that sequence's registration; --label-on says which sequence where several share it.

    Example: fedseg preprocess raw/ --out site-a-data/ --spacing 1 --jobs 2
    """
    if skull_strip is not None and skull_strip not in _SKULL_STRIP:
        raise typer.BadParameter(f"expected one of {', '.join(_SKULL_STRIP)}, got {skull_strip!r}",
                                 param_hint="--skull-strip")
    if label_on is not None and label_on not in _SEQUENCES:
        raise typer.BadParameter(f"expected one of {', '.join(_SEQUENCES)}, got {label_on!r}", param_hint="--label-on")
    target = _spacing(spacing) if spacing is not None else None

    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.configtools import config_from_mapping, config_to_dict
    from fedseg.workflow.preprocess.build import build_dataset

    base = PreprocessConfig()
    if plan is not None:
        from fedseg.federation.plan import load_plan

        base = load_plan(plan).preprocessing
    overrides: dict[str, Any] = {}
    if target is not None:
        overrides["spacing"] = list(target)
    if skull_strip is not None:
        overrides["skull_strip"] = skull_strip
    if n4:
        overrides["n4"] = True
    config = config_from_mapping(PreprocessConfig, {**config_to_dict(base), **overrides}, "preprocessing")

    progress = Progress(TextColumn("[bold]preprocess[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=stderr(), transient=False)
    task: dict[str, Any] = {}

    def on_start(found: Any, n_todo: int) -> None:
        skipped = len(found.cases) - n_todo
        if skipped:
            stderr().print(f"{skipped} unchanged case(s) skipped (use --force to redo them)")
        task["id"] = progress.add_task("cases", total=n_todo, last="")

    def on_case(outcome: Any) -> None:
        if "id" in task:  # events before on_start are skipped or discovery-failed cases
            progress.update(task["id"], advance=1, last=outcome.case_id)

    with progress:
        report = build_dataset(input_path, out, config, layout=layout, labels=labels, jobs=jobs, force=force,
                               on_start=on_start, on_case=on_case, accept=tuple(accept or ()), label_on=label_on)

    if as_json:
        print_json(report.to_dict())
    else:
        table = Table(title=f"{report.out}  ({report.layout} layout, {report.seconds:.1f} s)")
        for column in ("case", "status", "split", "brain ml", "skull strip", "registration", "warnings"):
            table.add_column(column, justify="right" if column == "brain ml" else "left",
                             overflow="fold" if column in ("warnings", "case") else "ellipsis")
        colours = {"done": "green", "skipped": "cyan", "failed": "red"}
        for o in report.outcomes:
            r = o.record
            status = f"[{colours[o.status]}]{o.status}[/]"
            if r is None:
                table.add_row(escape(o.case_id), status, "", "", "", "", f"[red]{escape(o.reason)}[/]")
                continue
            if not r.usable:
                status = "[yellow]flagged[/]"
            table.add_row(escape(o.case_id), status, r.split, f"{r.qc.get('brain_ml', 0):.0f}", _strip_cell(r.qc),
                          _registration_cell(r.qc.get("registration", {})), escape("; ".join(r.flags + r.warnings)))
        console = stdout()
        console.print(table)
        for group in report.labels:
            console.print(f"labels ({escape(str(group['group']))}): [bold]{group['convention']}[/] - "
                          f"{escape(str(group['reason']))}", highlight=False)
        mapped = [(o.case_id, o.record.qc["label_on"]) for o in report.outcomes
                  if o.record is not None and o.record.qc.get("label_on", {}).get("modality", "t1ce") != "t1ce"]
        if mapped:
            console.print("labels mapped from the sequence they were drawn on: " + "; ".join(
                f"{escape(cid)} ({on['modality']}: {escape(on['reason'])})" for cid, on in mapped), highlight=False)
        for o in report.failed:
            console.print(f"[red]failed[/] {escape(o.case_id)}: {escape(o.reason)}", highlight=False)
    if report.flagged:
        stderr().print(f"[yellow]{len(report.flagged)} case(s) flagged by QC[/], not used until accepted "
                       f"(review the picture, then `fedseg preprocess ... --accept CASE_ID`): "
                       + "; ".join(f"{escape(o.case_id)} ({escape(str(report.qc_png(o.case_id)))})"
                                   for o in report.flagged), highlight=False)
    if report.failed:
        error_line(f"{len(report.failed)} of {len(report.outcomes)} case(s) failed; the others are in {report.out}")
        raise typer.Exit(1)

"""`fedseg evaluate`: BraTS metrics (Dice, HD95, sensitivity, specificity, volumes) per region.

Two paths: ``--pred/--truth`` label maps on disk, or a verified global model predicting a site dataset
split (``--plan/--model/--data``, :func:`fedseg.inference.evaluate_model.evaluate_model`). Both fill
the same :class:`fedseg.metrics.EvaluationResult`, then :func:`finish` renders and writes it.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedseg.cli._console import case_progress, error_line, stderr, stdout
from fedseg.cli._evaltable import render_evaluation, render_problems
from fedseg.cli._options import DeviceOption
from fedseg.labels import LabelConvention

if TYPE_CHECKING:
    from fedseg.metrics import ScoringOptions
    from fedseg.metrics.report import EvaluationResult

__all__ = ["Empty", "LesionDef", "Metrics", "evaluate", "finish"]


class Empty(str, Enum):
    """--empty choices (mirrors fedseg.metrics.EmptyPolicy)."""

    brats = "brats"
    nan = "nan"


class Metrics(str, Enum):
    """--metrics choices (mirrors fedseg.metrics.MetricSet)."""

    legacy = "legacy"
    lesion_wise = "lesion-wise"
    both = "both"


class LesionDef(str, Enum):
    """--lesion-definition choices (mirrors fedseg.metrics.LesionDefinition)."""

    brats = "brats"
    brats2023 = "brats2023"


class Split(str, Enum):
    """--split choices for model evaluation on a site dataset."""

    train = "train"
    val = "val"
    test = "test"
    all = "all"


def evaluate(
    pred: Annotated[
        Path | None, typer.Option("--pred", help="Predicted label map, or a folder of them (BraTS or nnU-Net names).")
    ] = None,
    truth: Annotated[Path | None, typer.Option("--truth", help="Reference label map, or a folder of them.")] = None,
    labels: Annotated[
        LabelConvention,
        typer.Option("--labels", case_sensitive=False,
                     help="Label convention: auto (decided once per side over all files), brats2021 (ET=4), brats2023 "
                          "(ET=3), nnunet-brats (1 ED, 2 NCR), brats2024-post (4 resection cavity, not tumour)."),
    ] = LabelConvention.AUTO,
    empty: Annotated[
        Empty, typer.Option("--empty", help="Empty regions: brats (Dice 1/HD95 0 when both empty) or nan.")
    ] = Empty.brats,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write per-case rows and the summary as JSON ('-' for stdout).")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write one CSV row per case.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Cases scored in parallel (processes; 1 runs inline).")] = 1,
    plan_path: Annotated[
        Path | None, typer.Option("--plan", exists=True, help="Federation plan (with --model/--data).")
    ] = None,
    model_path: Annotated[
        Path | None, typer.Option("--model", exists=True, dir_okay=False, help="Global model (.fedseg) to predict with.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Site dataset folder whose cases are predicted and scored.")] = None,
    split: Annotated[Split, typer.Option("--split", help="Dataset split to score (with --model).")] = Split.val,
    device: DeviceOption = "auto",
    tta: Annotated[bool, typer.Option("--tta", help="Mirroring test-time augmentation (with --model).")] = False,
    metrics: Annotated[
        Metrics, typer.Option("--metrics", help="legacy (BraTS <= 2021 whole-region), lesion-wise (BraTS 2023+), or both.")
    ] = Metrics.both,
    lesion_definition: Annotated[
        LesionDef,
        typer.Option("--lesion-definition", help="brats (official brats-evaluation 0.0.10) or brats2023 (2023 scripts)."),
    ] = LesionDef.brats,
) -> None:
    """Score segmentations against references with BraTS metrics per region (WT, TC, ET).

    Either label maps on disk (--pred/--truth), or a verified global model predicting every case of a
    site dataset split (--plan/--model/--data; no image is written).

    Example: fedseg evaluate --pred preds/ --truth labels/ --csv metrics.csv --jobs 4
    """
    scoring = _scoring(metrics, lesion_definition)
    if model_path is not None or data is not None or plan_path is not None:
        if pred is not None or truth is not None:
            raise typer.BadParameter("give either --pred/--truth or --plan/--model/--data, not both")
        if model_path is None or data is None or plan_path is None:
            raise typer.BadParameter("model evaluation needs --plan, --model and --data")
        result = _evaluate_model(
            plan_path, model_path, data, split=split, empty=empty, device=device, tta=tta, scoring=scoring
        )
        finish(result, json_out=json_out, csv_out=csv_out)
        return
    if pred is None or truth is None:
        raise typer.BadParameter("give both --pred and --truth (label maps or folders of them)")
    result = _evaluate_label_maps(pred, truth, labels=labels, empty=empty, jobs=jobs, scoring=scoring)
    finish(result, json_out=json_out, csv_out=csv_out)


def _scoring(metrics: Metrics, definition: LesionDef) -> ScoringOptions:
    from fedseg.metrics import LesionDefinition, MetricSet, ScoringOptions

    return ScoringOptions(metrics=MetricSet(metrics.value), definition=LesionDefinition(definition.value))


def _evaluate_model(
    plan_path: Path, model_path: Path, data: Path, *, split: Split, empty: Empty, device: str, tta: bool,
    scoring: ScoringOptions | None = None,
) -> EvaluationResult:
    """Verify the model, predict and score every case of the split, with a progress bar on stderr."""

    from fedseg.device import resolve_device
    from fedseg.federation.plan import load_plan
    from fedseg.inference.evaluate_model import evaluate_model
    from fedseg.inference.predict import PredictOptions
    from fedseg.workflow.model_io import inference_spec, load_global_model

    plan = load_plan(plan_path)
    options = PredictOptions(device=device, mirror=tta)
    model = load_global_model(plan, model_path, resolve_device(device))  # verified before any case is read
    with case_progress("predicting + scoring") as progress:
        task = progress.add_task("cases", total=None)
        return evaluate_model(
            model,
            inference_spec(plan),
            data,
            split.value,
            model_name=str(model_path),
            options=options,
            empty=empty.value,
            on_case=lambda done, total: progress.update(task, completed=done, total=total),
            scoring=scoring,
        )


def _evaluate_label_maps(
    pred: Path, truth: Path, *, labels: LabelConvention, empty: Empty, jobs: int, scoring: ScoringOptions | None = None
) -> EvaluationResult:
    """Pair and score label maps on disk with a progress bar on stderr."""

    from fedseg.metrics import EmptyPolicy
    from fedseg.workflow.evaluate_labels import evaluate_label_maps

    with case_progress("scoring") as progress:
        task = progress.add_task("cases", total=None)
        return evaluate_label_maps(
            pred,
            truth,
            convention=labels,
            empty=EmptyPolicy(empty.value),
            jobs=jobs,
            on_paired=lambda n: progress.update(task, total=n),
            on_done=lambda _case: progress.advance(task),
            scoring=scoring,
        )


def finish(result: EvaluationResult, *, json_out: Path | None, csv_out: Path | None) -> None:
    """Render the tables, write --json/--csv, report failures and unpaired cases; exit 1 if any."""
    from fedseg.workflow.evaluate_labels import write_csv, write_json

    to_stdout_json = json_out is not None and str(json_out) == "-"
    if to_stdout_json:
        import json

        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    elif result.cases:
        render_evaluation(result, stdout())
    if json_out is not None and not to_stdout_json:
        write_json(result, json_out)
    if csv_out is not None:
        write_csv(result, csv_out)
    render_problems(result, stderr())
    if not result.ok:
        error_line(f"{len(result.failures)} case(s) failed and {len(result.unpaired)} file(s) unpaired; the other cases were scored")
        raise typer.Exit(1)

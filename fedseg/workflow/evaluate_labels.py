"""Evaluate label maps on disk: pair predictions with references, check grids, score cases in parallel.

The I/O half of ``fedseg evaluate --pred/--truth``; the maths lives in :mod:`fedseg.metrics`.

Files are paired by case id (:mod:`fedseg.workflow.label_pairs`).

With ``--labels auto`` the convention is decided once per side over all its files
(:func:`fedseg.labels.decide_convention`: a 3 and a 4 anywhere among the references means BraTS 2024
post-treatment, so a resection cavity is never scored as ET); predictions and references are decided
separately, since fedseg writes ET as 3 or 4 after its input. The decisions go into ``settings``.

A failure in one case (unreadable file, grid mismatch, bad label values) is recorded with a message
naming the file and the other cases go on; files without a partner are listed as unpaired.
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from fedseg.errors import FedsegError, MetricsError
from fedseg.fsutil import atomic_write_json, atomic_write_text, refuse_output_overlap
from fedseg.labels import REGIONS, LabelConvention, LabelDecision, decide_convention
from fedseg.metrics import (
    METRICS,
    CaseFailure,
    CaseResult,
    EmptyPolicy,
    EvaluationResult,
    ScoringOptions,
    flat_row,
    lesion_columns,
)
from fedseg.workflow.label_pairs import CasePair, pair_label_files

__all__ = [
    "evaluate_label_maps",
    "evaluate_pair",
    "evaluate_pairs",
    "decide_sides",
    "write_csv",
    "write_json",
]

log = logging.getLogger(__name__)

def evaluate_pair(
    pair: CasePair,
    *,
    convention: LabelConvention = LabelConvention.AUTO,
    truth_convention: LabelConvention | None = None,
    empty: EmptyPolicy = EmptyPolicy.BRATS,
    scoring: ScoringOptions | None = None,
) -> CaseResult:
    """Read one pair, check that it shares a grid and valid labels, and return its metrics.

    ``convention`` is the predictions', ``truth_convention`` the references' (default: the same);
    ``scoring`` chooses legacy and/or lesion-wise metrics (default: legacy only).

    Raises ImageError / MetricsError whose message names the offending file.
    """
    from fedseg.imaging.checked_read import nonfinite_mask
    from fedseg.imaging.io import grid_of, read_image, same_grid, to_array
    from fedseg.metrics import check_labels, score_case

    pred_img, truth_img = read_image(pair.pred), read_image(pair.truth)
    gp, gt = grid_of(pred_img), grid_of(truth_img)
    if not same_grid(gp, gt):
        diffs = [
            f"{name} {getattr(gp, name)} vs {getattr(gt, name)}"
            for name in ("size", "spacing", "origin", "direction")
            if getattr(gp, name) != getattr(gt, name)
        ]
        raise MetricsError(f"{pair.pred}: grid differs from the reference {pair.truth}: " + "; ".join(diffs))
    for path in (pair.pred, pair.truth):
        mask = nonfinite_mask(Path(path))
        if mask is not None and mask.any():
            from fedseg.voxel_report import where_voxels

            raise MetricsError(f"{path}: expected a label map of integers, found NaN or infinity in {where_voxels(mask)}")
    pred_arr, truth_arr = to_array(pred_img), to_array(truth_img)
    conventions = []
    truth_convention = convention if truth_convention is None else truth_convention
    for arr, path, conv in ((pred_arr, pair.pred, convention), (truth_arr, pair.truth, truth_convention)):
        try:
            conventions.append(check_labels(arr, conv))
        except MetricsError as exc:
            raise MetricsError(f"{path}: {exc}") from None
    spacing_zyx = tuple(reversed(gt.spacing))  # ITK (x, y, z) -> array order (z, y, x)
    metrics, lesionwise = score_case(pred_arr, truth_arr, spacing_zyx, convention=conventions[0],
                                     ref_convention=conventions[1], empty=empty, scoring=scoring)
    return CaseResult(
        case_id=pair.case_id,
        metrics=metrics,
        pred=str(pair.pred),
        truth=str(pair.truth),
        pred_convention=conventions[0].value,
        truth_convention=conventions[1].value,
        lesionwise=lesionwise,
    )


def _score(pair: CasePair, convention: LabelConvention, truth_convention: LabelConvention | None,
           empty: EmptyPolicy, scoring: ScoringOptions | None = None) -> CaseResult | CaseFailure:
    """Evaluate one pair, turning a FedsegError into a CaseFailure (runs in a worker process)."""
    try:
        return evaluate_pair(pair, convention=convention, truth_convention=truth_convention, empty=empty,
                             scoring=scoring)
    except FedsegError as exc:
        return CaseFailure(pair.case_id, str(exc))


def decide_sides(pairs: Sequence[CasePair], convention: LabelConvention, *,
                 jobs: int = 1) -> tuple[LabelDecision, LabelDecision]:
    """Decide the predictions' and the references' conventions, each over all its files (reading values only)."""
    convention = LabelConvention(convention)
    if convention is not LabelConvention.AUTO:
        forced = decide_convention([], override=convention)
        return forced, forced
    from fedseg.data.label_scan import read_value_sets

    values = read_value_sets([p.pred for p in pairs] + [p.truth for p in pairs], jobs=jobs)
    n = len(pairs)
    pred, truth = ([v for v in values[a:b] if v is not None] for a, b in ((0, n), (n, 2 * n)))
    decisions = decide_convention(pred), decide_convention(truth)
    for side, decision in zip(("predictions", "references"), decisions):
        log.info("labels of the %s: %s; %s", side, decision.convention.value, decision.reason)
    return decisions


def evaluate_pairs(
    pairs: Sequence[CasePair],
    *,
    convention: LabelConvention = LabelConvention.AUTO,
    truth_convention: LabelConvention | None = None,
    empty: EmptyPolicy = EmptyPolicy.BRATS,
    jobs: int = 1,
    on_done: Callable[[str], None] | None = None,
    scoring: ScoringOptions | None = None,
) -> tuple[list[CaseResult], list[CaseFailure]]:
    """Score every pair, inline (``jobs=1``) or in ``jobs`` processes; call ``on_done(case_id)`` after each.

    Results and failures come back sorted by case id whatever the completion order.
    """
    if jobs < 1:
        raise MetricsError(f"--jobs must be at least 1, found {jobs}")
    convention, empty = LabelConvention(convention), EmptyPolicy(empty)
    outcomes: list[CaseResult | CaseFailure] = []
    if jobs == 1 or len(pairs) <= 1:
        for pair in pairs:
            outcomes.append(_score(pair, convention, truth_convention, empty, scoring))
            if on_done:
                on_done(pair.case_id)
    else:
        # spawn, not fork: the parent may hold threads (rich's progress refresher) or torch state.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(pairs)), mp_context=ctx) as pool:
            futures = {pool.submit(_score, pair, convention, truth_convention, empty, scoring): pair
                       for pair in pairs}
            for future in as_completed(futures):
                outcomes.append(future.result())
                if on_done:
                    on_done(futures[future].case_id)
    results = sorted((o for o in outcomes if isinstance(o, CaseResult)), key=lambda r: r.case_id)
    failures = sorted((o for o in outcomes if isinstance(o, CaseFailure)), key=lambda f: f.case_id)
    for failure in failures:
        log.info("case %s failed: %s", failure.case_id, failure.message)
    return results, failures


def evaluate_label_maps(
    pred: Path,
    truth: Path,
    *,
    convention: LabelConvention = LabelConvention.AUTO,
    empty: EmptyPolicy = EmptyPolicy.BRATS,
    jobs: int = 1,
    on_paired: Callable[[int], None] | None = None,
    on_done: Callable[[str], None] | None = None,
    scoring: ScoringOptions | None = None,
) -> EvaluationResult:
    """Pair, check and score label maps; return an EvaluationResult (failures and unpaired files listed).

    ``on_paired(n)`` is called with the number of pairs before scoring starts (to size a progress
    bar), ``on_done(case_id)`` after each case. The conventions are decided first (:func:`decide_sides`).
    """
    paired = pair_label_files(pred, truth)
    decided = decide_sides(paired.pairs, convention, jobs=jobs)
    if on_paired:
        on_paired(len(paired.pairs))
    cases, failures = evaluate_pairs(paired.pairs, convention=decided[0].convention,
                                     truth_convention=decided[1].convention, empty=empty, jobs=jobs, on_done=on_done,
                                     scoring=scoring)
    return EvaluationResult(
        cases=cases,
        failures=failures,
        unpaired=paired.unpaired,
        settings={
            "source": "label-maps",
            "pred": str(pred),
            "truth": str(truth),
            "labels": LabelConvention(convention).value,
            "label_decision": {"pred": decided[0].to_dict(), "truth": decided[1].to_dict()},
            "empty": EmptyPolicy(empty).value,
            **(scoring or ScoringOptions()).settings(),
        },
    )


def write_csv(result: EvaluationResult, path: Path) -> None:
    """Write one row per scored case (``<REGION>_<metric>`` columns, NaN as empty) to ``path`` atomically."""
    columns = ["case", "pred", "truth"] + [f"{r}_{m}" for r in REGIONS for m in METRICS]
    if any(case.lesionwise is not None for case in result.cases):
        columns += [f"{r}_lesionwise_{k}" for r in REGIONS for k in lesion_columns()]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for case in result.cases:
        writer.writerow(flat_row(case))
    _refuse_inputs(result, Path(path), "--csv")
    atomic_write_text(Path(path), buf.getvalue())


def write_json(result: EvaluationResult, path: Path) -> None:
    """Write settings, per-case rows, summary, failures and unpaired files as JSON to ``path`` atomically."""
    _refuse_inputs(result, Path(path), "--json")
    atomic_write_json(Path(path), result.to_dict())


def _refuse_inputs(result: EvaluationResult, path: Path, what: str) -> None:
    """Refuse a report path that is one of the scored files (a prediction, a reference, a case file)."""
    inputs = {f"input of case {c.case_id}": Path(f) for c in result.cases for f in (c.pred, c.truth)
              if not f.startswith("model ")}
    refuse_output_overlap(path, inputs, what=what)

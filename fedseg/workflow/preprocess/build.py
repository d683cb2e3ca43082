"""Build a site dataset from raw cases: discover, preprocess in parallel, write, report (DESIGN.md §4.2).

* Resumable: a case whose source files (SHA-256) and preprocessing config (its hash, plus
  :data:`PIPELINE_VERSION`) are unchanged since the last run, and whose case file exists, is skipped;
  ``force`` redoes every case. ``dataset.json`` is rewritten after every finished case, so an
  interrupted run resumes where it stopped.
* Safe: each case file, QC picture and ``dataset.json`` is written atomically; temp files left by a
  killed run are removed on start. A case that fails (bad input, or any error while processing it) is
  reported with its reason and the others go on.
* Parallel: ``jobs`` worker processes (from a fork server, so no ITK thread pool is inherited across a
  fork), each with ``cores // jobs`` SimpleITK threads.
* Splits (:mod:`fedseg.data.splits`): each split gets its share of the cases; a split recorded in an
  existing ``dataset.json`` never changes (whatever the settings), new cases fill the split furthest
  below its share.
* QC gate (:mod:`fedseg.imaging.qc_gate`): an implausible case is written but ``flagged`` and left out
  of every split until accepted (``accept``, or ``"accepted": true`` in ``dataset.json``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.configtools import config_to_dict
from fedseg.data.dataset import CASES_DIR, CaseRecord, load_dataset, write_case, write_dataset_json
from fedseg.data.discovery import Discovery, RawCase, discover
from fedseg.data.label_scan import decide_dataset_labels
from fedseg.data.splits import assign_splits, recorded_splits, settle_splits
from fedseg.errors import DatasetError, FedsegError
from fedseg.fsutil import atomic_write_json, remove_stale_temps
from fedseg.hashing import sha256_file, sha256_json
from fedseg.imaging.io import check_input_path
from fedseg.labels import MODALITIES, LabelConvention, Layout
from fedseg.workflow.preprocess.report import QC_DIR, BuildReport, CaseOutcome

__all__ = ["PIPELINE_VERSION", "BuildReport", "CaseOutcome", "assign_splits", "available_cores", "build_dataset",
           "config_sha256"]

log = logging.getLogger(__name__)

#: Bumped whenever the preprocessing steps change what they produce; a new version redoes every case.
PIPELINE_VERSION = 5  # 2: deepbet by default, QC gate figures; 3: one-thread registration, labels on any grid;
#  4: the classic strip for scanner-like heads (cranium radius, fat, T2/FLAIR cues); 5: deep extractors read
#  the T1 as acquired (their mask reaching the reference grid through its registration), registration down to 1.5 mm
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def config_sha256(config: PreprocessConfig) -> str:
    """Return the SHA-256 of the canonical JSON of ``config`` (comparable with a plan's preprocessing table)."""
    return sha256_json(config_to_dict(config))


def _source_digest(path: Path) -> str:
    """Return the SHA-256 of a file, or of a DICOM folder (names and digests of its files, sorted).

    Raises ImageError for a device, FIFO or socket, which would never end (or block) when read.
    """
    check_input_path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return sha256_json([[p.relative_to(path).as_posix(), sha256_file(p)] for p in files])
    return sha256_file(path)


def _sources(case: RawCase, base: Path) -> dict[str, str]:
    out = {}
    for path in case.sources().values():
        try:
            key = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            key = str(path.resolve())
        out[key] = _source_digest(path)
    return out


def _set_threads(threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(max(1, threads))


def available_cores() -> int:
    """Return the CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _worker_context() -> Any:
    """Return a forkserver context with the heavy modules preloaded (spawn where there is no forkserver).

    Workers are never forked from this process, which may hold ITK's thread pool; the fork server
    imports the libraries once and forks clean workers from itself.
    """
    import multiprocessing

    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:  # Windows
        return multiprocessing.get_context("spawn")
    context.set_forkserver_preload(["fedseg.workflow.preprocess.build", "fedseg.workflow.preprocess.case", "SimpleITK", "h5py"])
    return context


def _run_case(case: RawCase, config: PreprocessConfig, out: Path, label_on: str | None, sources: dict[str, str],
              brain_ml_range: tuple[float, float], qc_png: bool) -> CaseOutcome:
    """Preprocess and write one case; any error becomes a failed outcome (interrupts propagate)."""
    from fedseg.imaging.qc import write_qc_png
    from fedseg.imaging.qc_gate import case_flags
    from fedseg.workflow.preprocess.case import preprocess_case

    start = time.perf_counter()
    try:
        result = preprocess_case(case, config, brain_ml_range=brain_ml_range, label_on=label_on)
        flags = case_flags(result.qc, config)
        t0 = time.perf_counter()
        write_case(out / CASES_DIR / f"{case.id}.h5", case_id=case.id, image=result.image,
                   brain_mask=result.brain_mask, geometry=result.geometry, label=result.label,
                   label_convention=result.label_convention, dtype=config.dtype)
        result.timings["save"] = time.perf_counter() - t0
        if qc_png:
            t0 = time.perf_counter()
            write_qc_png(out / QC_DIR / f"{case.id}.png", result.image, result.brain_mask,
                         spacing_xyz=result.geometry.spacing, modalities=MODALITIES, label=result.label,
                         title=f"{case.id}  skull strip: {result.qc.get('skull_strip')}"
                               + ("  FLAGGED" if flags else ""))
            atomic_write_json(out / QC_DIR / f"{case.id}.json",
                              {"id": case.id, "qc": result.qc, "warnings": result.warnings, "flags": flags})
            result.timings["qc"] = time.perf_counter() - t0
    except FedsegError as exc:
        return CaseOutcome(case.id, "failed", str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others
        log.debug("case %s failed", case.id, exc_info=True)
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else 'no detail'}"
        return CaseOutcome(case.id, "failed", f"case {case.id}: {reason[:300]}", seconds=time.perf_counter() - start)
    record = CaseRecord(id=case.id, split="train", file=f"{CASES_DIR}/{case.id}.h5", sources=sources,
                        has_label=result.label is not None, label_convention=result.label_convention,
                        qc=result.qc, warnings=result.warnings, status="flagged" if flags else "ok", flags=flags)
    return CaseOutcome(case.id, "done", record=record, seconds=time.perf_counter() - start, timings=result.timings)


def _previous(out: Path, digest: str) -> dict[str, CaseRecord]:
    """Return the reusable records of an earlier run with the same config and pipeline version."""
    if not (out / "dataset.json").exists():
        return {}
    try:
        old = load_dataset(out)
    except DatasetError as exc:
        log.warning("ignoring the existing dataset.json: %s", exc)
        return {}
    if old.config_sha256 != digest or old.meta.get("pipeline_version") != PIPELINE_VERSION:
        return {}
    return {c.id: c for c in old.cases if (out / c.file).is_file()}


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: the output must be a folder, but a file of that name exists")
    try:
        for sub in (out, out / CASES_DIR, out / QC_DIR):
            sub.mkdir(parents=True, exist_ok=True)
            removed = remove_stale_temps(sub)
            if removed:
                log.info("removed %d stale temp file(s) in %s", removed, sub)
    except OSError as exc:
        raise DatasetError(f"{out}: cannot create the output folder ({exc.strerror})") from None


def build_dataset(
    input_path: Path,
    out: Path,
    config: PreprocessConfig,
    *,
    layout: Layout | str = Layout.AUTO,
    labels: LabelConvention | str = LabelConvention.AUTO,
    jobs: int = 1,
    force: bool = False,
    brain_ml_range: tuple[float, float] | None = None,
    qc_png: bool = True,
    on_start: Callable[[Discovery, int], None] | None = None,
    on_case: Callable[[CaseOutcome], None] | None = None,
    accept: Sequence[str] = (),
    label_on: str | None = None,
) -> BuildReport:
    """Preprocess every raw case under ``input_path`` into the site dataset ``out`` and return a report.

    The label convention is decided once for the dataset (``labels``, default auto: see
    :mod:`fedseg.data.label_scan`) before any case is processed, and recorded in the report and
    dataset.json. ``on_case(outcome)`` is called for every skipped or discovery-failed case, then ``on_start(discovery,
    n_to_process)`` once, then ``on_case`` again as each processed case finishes (for progress bars).
    ``accept`` names flagged cases a person has reviewed: they are marked ``accepted`` and used.
    ``label_on`` (a modality name) says which modality the label maps were drawn on where several share
    their grid (None: :data:`~fedseg.imaging.checked_read.LABEL_ON_ORDER`); each case records its choice
    in ``qc["label_on"]``, and a case whose recorded request differs is redone.
    Raises DatasetError for an unusable input or output (per-case problems are outcomes, not errors).
    """
    started = time.perf_counter()
    input_path, out = Path(input_path), Path(out)
    if jobs < 1:
        raise DatasetError(f"--jobs must be at least 1, got {jobs}")
    if label_on is not None and label_on not in MODALITIES:
        raise DatasetError(f"--label-on must be one of {', '.join(MODALITIES)}, got {label_on!r}")
    _prepare_out(out)
    found, label_groups = decide_dataset_labels(discover(input_path, layout), labels, jobs=jobs)
    label_meta = [g.to_dict() for g in label_groups]
    unknown = sorted(set(accept) - {c.id for c in found.cases})
    if unknown:
        raise DatasetError(f"--accept: no case {', '.join(unknown)} under {input_path}")
    digest = config_sha256(config)
    previous = {} if force else _previous(out, digest)
    recorded = recorded_splits(out)
    base = input_path.parent if input_path.is_file() else input_path
    ml_range = brain_ml_range or config.qc_brain_ml  # the QC gate's bounds: warned and flagged alike

    outcomes: dict[str, CaseOutcome] = {}
    for problem in found.problems:
        outcomes[problem.case_id] = CaseOutcome(problem.case_id, "failed", problem.reason)
    todo: list[tuple[RawCase, dict[str, str]]] = []
    for case in found.cases:
        if not _SAFE_ID.match(case.id):
            outcomes[case.id] = CaseOutcome(case.id, "failed", f"case id {case.id!r} cannot name a file; "
                                                               "expected letters, digits, '.', '_' or '-'")
            continue
        try:
            sources = _sources(case, base)
        except OSError as exc:
            outcomes[case.id] = CaseOutcome(case.id, "failed", f"case {case.id}: cannot read {exc.filename} "
                                                               f"({exc.strerror})")
            continue
        except FedsegError as exc:
            outcomes[case.id] = CaseOutcome(case.id, "failed", f"case {case.id}: {exc}")
            continue
        old = previous.get(case.id)
        same_label = case.seg is None or (old is not None and old.label_convention == case.convention.value
                                          and old.qc.get("label_on", {}).get("requested") == (label_on or "auto"))
        if old is not None and old.sources == sources and same_label:
            outcomes[case.id] = CaseOutcome(case.id, "skipped", record=old)
        else:
            todo.append((case, sources))
    for outcome in outcomes.values():
        if on_case is not None:
            on_case(outcome)
    if on_start is not None:
        on_start(found, len(todo))

    def meta(complete: bool) -> dict[str, Any]:
        return {"modalities": list(MODALITIES), "preprocessing": config_to_dict(config), "config_sha256": digest,
                "pipeline_version": PIPELINE_VERSION, "layout": found.layout.value, "complete": complete,
                "labels": {"requested": LabelConvention(labels).value, "decided": label_meta,
                           "label_on": label_on or "auto"},
                "failed": [{"id": o.case_id, "reason": o.reason} for o in sorted(outcomes.values(),
                                                                                  key=lambda o: o.case_id)
                           if o.status == "failed"]}

    def finish(outcome: CaseOutcome, complete: bool = False) -> None:
        outcomes[outcome.case_id] = outcome
        records = [o.record for o in outcomes.values() if o.record is not None]
        settle_splits(records, config, recorded, ())
        write_dataset_json(out, meta(complete), sorted(records, key=lambda r: r.id))
        if on_case is not None and outcome.status != "skipped":
            on_case(outcome)

    args = (config, out, label_on)
    if jobs == 1 or len(todo) <= 1:
        _set_threads(available_cores())
        for case, sources in todo:
            finish(_run_case(case, *args, sources, ml_range, qc_png))
    else:
        context, workers = _worker_context(), min(jobs, len(todo))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_set_threads,
                                 initargs=(max(1, available_cores() // workers),)) as pool:
            futures: dict[Future[CaseOutcome], str] = {
                pool.submit(_run_case, case, *args, sources, ml_range, qc_png): case.id for case, sources in todo}
            try:
                for future in as_completed(futures):
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker fails its case only
                        outcome = CaseOutcome(futures[future], "failed",
                                              f"case {futures[future]}: worker process failed ({type(exc).__name__})")
                    finish(outcome)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    ordered = [outcomes[k] for k in sorted(outcomes)]
    records = [o.record for o in ordered if o.record is not None]
    settle_splits(records, config, recorded, accept)
    write_dataset_json(out, meta(True), records)
    return BuildReport(input=input_path, out=out, layout=found.layout.value, config_sha256=digest, jobs=jobs,
                       seconds=time.perf_counter() - started, outcomes=ordered, labels=label_meta)


"""Pair prediction and reference label maps on disk by case id (the pairing half of ``fedseg evaluate --pred/--truth``).

Case ids come from file names: ``<ID>_seg.nii.gz`` / ``<ID>-seg.nii.gz`` (BraTS, flat or in a case
folder ``<ID>/<ID>_seg.nii.gz``), ``<ID>.nii.gz`` (nnU-Net, or any "same file name" layout). In a
folder holding any ``*seg.nii[.gz]`` file (top level or one level down) only those files are labels,
so a raw BraTS folder with its four modalities beside the segmentation works as ``--truth``;
otherwise every top-level NIfTI file is a label map. Two explicit files are paired with each other
whatever their names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fedseg.errors import MetricsError

__all__ = ["CasePair", "LabelPairs", "case_id_of", "discover_labels", "pair_label_files"]

_NIFTI = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE)
_SEG = re.compile(r"^(?P<id>.+?)[_-]seg$", re.IGNORECASE)


@dataclass(frozen=True)
class CasePair:
    """A prediction file and its reference file, with the case id they share."""

    case_id: str
    pred: Path
    truth: Path


@dataclass(frozen=True)
class LabelPairs:
    """Paired cases (sorted by id) and one message per file that has no partner."""

    pairs: list[CasePair]
    unpaired: list[str]


def case_id_of(path: Path) -> str | None:
    """Return the case id of a NIfTI file name (``X_seg.nii.gz``, ``X-seg.nii``, ``X.nii.gz`` -> X), or None."""
    m = _NIFTI.match(Path(path).name)
    if m is None:
        return None
    stem = m.group("stem")
    seg = _SEG.match(stem)
    return seg.group("id") if seg else stem


def _is_seg(path: Path) -> bool:
    m = _NIFTI.match(path.name)
    return m is not None and _SEG.match(m.group("stem")) is not None


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")  # skips hidden files and fedseg's own temp files


def discover_labels(root: Path) -> dict[str, Path]:
    """Return ``{case id: label file}`` for a file or a folder (see the module docstring for the rules).

    Raises MetricsError when the path is missing, the folder holds no NIfTI label file, or two files
    claim one case id.
    """
    root = Path(root)
    if not root.exists():
        raise MetricsError(f"{root}: no such file or folder")
    if root.is_file():
        case_id = case_id_of(root)
        if case_id is None:
            raise MetricsError(f"{root}: expected a NIfTI label map (.nii or .nii.gz)")
        return {case_id: root}
    top = sorted(p for p in root.iterdir() if p.is_file() and _visible(p) and _NIFTI.match(p.name))
    nested = sorted(
        p
        for d in root.iterdir()
        if d.is_dir() and _visible(d)
        for p in d.iterdir()
        if p.is_file() and _visible(p) and _is_seg(p)
    )
    seg_files = [p for p in top if _is_seg(p)] + nested
    files = seg_files if seg_files else top
    if not files:
        raise MetricsError(f"{root}: expected NIfTI label maps (*.nii, *.nii.gz, or <ID>/<ID>_seg.nii.gz), found none")
    found: dict[str, Path] = {}
    for path in files:
        case_id = case_id_of(path)
        assert case_id is not None
        if case_id in found:
            raise MetricsError(f"{root}: two label maps for case {case_id!r}: {found[case_id]} and {path}")
        found[case_id] = path
    return found


def pair_label_files(pred: Path, truth: Path) -> LabelPairs:
    """Pair prediction and reference label maps by case id; two explicit files are paired directly.

    Raises MetricsError when nothing can be paired at all.
    """
    pred, truth = Path(pred), Path(truth)
    if pred.is_file() and truth.is_file():
        discover_labels(pred), discover_labels(truth)  # validates both names
        case_id = case_id_of(truth) or truth.name
        return LabelPairs([CasePair(case_id, pred, truth)], [])
    preds, truths = discover_labels(pred), discover_labels(truth)
    pairs = [CasePair(k, preds[k], truths[k]) for k in sorted(preds.keys() & truths.keys())]
    unpaired = [f"{preds[k]}: prediction for case {k!r} has no reference in {truth}" for k in sorted(preds.keys() - truths.keys())]
    unpaired += [f"{truths[k]}: reference for case {k!r} has no prediction in {pred}" for k in sorted(truths.keys() - preds.keys())]
    if not pairs:
        raise MetricsError(
            f"no case ids in common between predictions {pred} ({len(preds)} files, e.g. {_first(preds)}) "
            f"and references {truth} ({len(truths)} files, e.g. {_first(truths)})"
        )
    return LabelPairs(pairs, unpaired)


def _first(found: dict[str, Path]) -> str:
    return found[min(found)].name if found else "none"

"""Find the raw cases of a site: BraTS 2018-2022, BraTS 2023+, nnU-Net raw, or a CSV (DESIGN.md §4.1).

Layouts, auto-detected unless forced:

* ``brats2021`` (BraTS 2018-2022): ``<ID>/<ID>_{t1,t1ce,t2,flair}.nii.gz`` and ``<ID>/<ID>_seg.nii.gz``
  with labels 0/1/2/4. Case folders may sit one level down (BraTS 2018's ``HGG/`` and ``LGG/``).
* ``brats2023`` (BraTS 2023+): ``<ID>/<ID>-{t1n,t1c,t2w,t2f}.nii.gz`` and ``<ID>-seg.nii.gz``, labels 0/1/2/3.
* ``nnunet``: ``imagesTr/<ID>_000{0..3}.nii.gz``, ``labelsTr/<ID>.nii.gz`` and a ``dataset.json`` whose
  ``channel_names`` (v2) or ``modality`` (v1) map channel numbers to modality names; its ``labels``
  decide the label convention (see :func:`_nnunet_convention`).
* ``csv``: a CSV file with header ``case,t1,t1ce,t2,flair[,seg]`` whose cells are NIfTI files or DICOM
  series folders, relative to the CSV's folder.

File names match case-insensitively, ``.nii`` or ``.nii.gz``. Other files beside a case (brain masks,
JSON sidecars) are ignored. Problems that concern one case (a missing modality, a duplicate id, a path
that does not exist) do not raise: they come back as :class:`DiscoveryProblem` so that case fails in the
report while the others are processed. Only a missing or unrecognisable input raises DatasetError.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.errors import DatasetError
from fedseg.labels import MODALITIES, LabelConvention, Layout

__all__ = ["Discovery", "DiscoveryProblem", "RawCase", "discover"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawCase:
    """One raw case: modality name -> image path (file or DICOM folder), optional label, its convention."""

    id: str
    images: dict[str, Path]
    seg: Path | None = None
    convention: LabelConvention = LabelConvention.BRATS2021

    def sources(self) -> dict[str, Path]:
        """Return every input path by role (the modalities, then ``seg``)."""
        out = {m: self.images[m] for m in MODALITIES if m in self.images}
        if self.seg is not None:
            out["seg"] = self.seg
        return out


@dataclass(frozen=True)
class DiscoveryProblem:
    """A case that cannot be processed, and why (it becomes a failed case, not an exception)."""

    case_id: str
    reason: str


@dataclass
class Discovery:
    """What :func:`discover` found: the layout, the processable cases and the problem cases."""

    root: Path
    layout: Layout
    cases: list[RawCase] = field(default_factory=list)
    problems: list[DiscoveryProblem] = field(default_factory=list)


# Raw file suffix per modality, per folder layout (separator, names).
_FOLDER_NAMES: dict[Layout, tuple[str, dict[str, str]]] = {
    Layout.BRATS2021: ("_", {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}),
    Layout.BRATS2023: ("-", {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}),
}
_FOLDER_CONVENTION = {Layout.BRATS2021: LabelConvention.BRATS2021, Layout.BRATS2023: LabelConvention.BRATS2023}
_NIFTI = re.compile(r"^(?P<stem>.+?)\.nii(?:\.gz)?$", re.IGNORECASE)

# Modality name spellings found in dataset.json channel maps and CSV headers (lower case, alphanumeric only).
_ALIASES: dict[str, str] = {
    **dict.fromkeys(("t1", "t1n", "t1w", "t1native", "t1pre", "native"), "t1"),
    **dict.fromkeys(("t1ce", "t1c", "t1gd", "t1post", "t1contrast", "t1wce", "t1cegd"), "t1ce"),
    **dict.fromkeys(("t2", "t2w"), "t2"),
    **dict.fromkeys(("flair", "t2f", "t2flair", "t2wflair"), "flair"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _nifti_stems(folder: Path) -> dict[str, Path]:
    """Return lower-case stem -> path for the NIfTI files directly in ``folder``."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        m = _NIFTI.match(path.name)
        if m and path.is_file():
            out.setdefault(m.group("stem").lower(), path)
    return out


def _match_folder(folder: Path, layout: Layout) -> tuple[dict[str, Path], Path | None] | None:
    """Return (modality -> path, seg) for a case folder in ``layout``, or None when nothing matches."""
    sep, names = _FOLDER_NAMES[layout]
    stems = _nifti_stems(folder)
    prefix = f"{folder.name.lower()}{sep}"
    found = {m: stems[prefix + names[m]] for m in MODALITIES if prefix + names[m] in stems}
    seg = stems.get(prefix + names["seg"])
    if not found:
        return None
    return found, seg


def _candidate_folders(root: Path) -> list[Path]:
    """Return folders at depth 0, 1 and 2 under ``root`` that may be case folders."""
    out = [root]
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out.append(child)
        out += sorted(p for p in child.iterdir() if p.is_dir() and not p.name.startswith("."))
    return out


def _discover_folders(root: Path, forced: Layout) -> Discovery:
    layouts = [forced] if forced != Layout.AUTO else [Layout.BRATS2021, Layout.BRATS2023]
    found: list[tuple[str, Layout, dict[str, Path], Path | None, Path]] = []
    for folder in _candidate_folders(root):
        for layout in layouts:
            match = _match_folder(folder, layout)
            if match is not None:
                found.append((folder.name, layout, match[0], match[1], folder))
                break
    if not found:
        want = " or ".join(f"<ID>/<ID>{_FOLDER_NAMES[lay][0]}{_FOLDER_NAMES[lay][1]['t1ce']}.nii.gz" for lay in layouts)
        raise DatasetError(f"{root}: no raw cases found; expected case folders like {want}, "
                           "imagesTr/ (nnU-Net) or a CSV file")
    counts = Counter(layout for _, layout, *_ in found)
    result = Discovery(root=root, layout=counts.most_common(1)[0][0])
    for case_id, layout, images, seg, folder in found:
        missing = [m for m in MODALITIES if m not in images]
        if missing:
            sep, names = _FOLDER_NAMES[layout]
            files = ", ".join(f"{case_id}{sep}{names[m]}.nii.gz" for m in missing)
            result.problems.append(DiscoveryProblem(case_id, f"{folder}: missing modality {', '.join(missing)} "
                                                             f"(expected {files})"))
            continue
        result.cases.append(RawCase(case_id, images, seg, _FOLDER_CONVENTION[layout]))
    return result


def _nnunet_convention(labels: Mapping[str, Any]) -> LabelConvention:
    """Decide the label convention from dataset.json ``labels`` (v2 name -> value, or v1 value -> name)."""
    by_value: dict[int, str] = {}
    for key, value in labels.items():
        if isinstance(value, list):  # v2 region-based training ("whole tumor": [1, 2, 3]): nnU-Net's BraTS numbering
            return LabelConvention.NNUNET_BRATS
        if str(key).lstrip("-").isdigit():
            by_value[int(key)] = _norm(str(value))
        elif isinstance(value, int):
            by_value[value] = _norm(str(key))
    if 4 in by_value:
        return LabelConvention.BRATS2021
    first = by_value.get(1, "")
    if "edema" in first or first in ("ed", "snfh"):
        return LabelConvention.NNUNET_BRATS
    return LabelConvention.BRATS2023


def _discover_nnunet(root: Path) -> Discovery:
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{meta_path}: missing; an nnU-Net raw dataset needs dataset.json with its channel map") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{meta_path}: cannot parse ({exc})") from None
    channels = meta.get("channel_names", meta.get("modality")) if isinstance(meta, dict) else None
    if not isinstance(channels, dict):
        raise DatasetError(f"{meta_path}: expected a 'channel_names' (or 'modality') map of channel -> name")
    channel_of: dict[str, int] = {}
    for key, name in channels.items():
        modality = _ALIASES.get(_norm(str(name)))
        if modality is None or not str(key).isdigit():
            raise DatasetError(f"{meta_path}: channel {key!r} = {name!r} is not one of T1, T1ce, T2, FLAIR")
        channel_of[modality] = int(key)
    missing = [m for m in MODALITIES if m not in channel_of]
    if missing:
        raise DatasetError(f"{meta_path}: the channel map lacks {', '.join(missing)}; fedseg needs {list(MODALITIES)}")
    ending = str(meta.get("file_ending", ".nii.gz"))
    convention = _nnunet_convention(meta.get("labels", {}) or {})
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    pattern = re.compile(rf"^(?P<id>.+)_(?P<ch>\d{{4}}){re.escape(ending)}$")
    per_case: dict[str, dict[int, Path]] = {}
    for path in sorted(images_dir.iterdir()):
        m = pattern.match(path.name)
        if m:
            per_case.setdefault(m.group("id"), {})[int(m.group("ch"))] = path
    if not per_case:
        raise DatasetError(f"{images_dir}: no images named <ID>_0000{ending}")
    result = Discovery(root=root, layout=Layout.NNUNET)
    for case_id, files in per_case.items():
        images = {m: files[c] for m, c in channel_of.items() if c in files}
        lacking = [m for m in MODALITIES if m not in images]
        if lacking:
            names = ", ".join(f"{case_id}_{channel_of[m]:04d}{ending}" for m in lacking)
            result.problems.append(DiscoveryProblem(case_id, f"{images_dir}: missing modality "
                                                             f"{', '.join(lacking)} (expected {names})"))
            continue
        seg = labels_dir / f"{case_id}{ending}"
        result.cases.append(RawCase(case_id, images, seg if seg.is_file() else None, convention))
    return result


def _discover_csv(path: Path) -> Discovery:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read the CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"{path}: empty; expected a header case,t1,t1ce,t2,flair[,seg]")
    header = [_norm(h) for h in rows[0]]
    columns: dict[str, int] = {}
    for i, name in enumerate(header):
        role = name if name in ("case", "id", "seg", "label", "convention") else _ALIASES.get(name)
        if role is None:
            raise DatasetError(f"{path}: unknown column {rows[0][i]!r}; expected case,t1,t1ce,t2,flair[,seg]")
        columns[{"id": "case", "label": "seg"}.get(role, role)] = i
    lacking = [c for c in ("case", *MODALITIES) if c not in columns]
    if lacking:
        raise DatasetError(f"{path}: missing column(s) {', '.join(lacking)}; expected case,t1,t1ce,t2,flair[,seg]")
    base = path.parent
    result = Discovery(root=path, layout=Layout.CSV)

    def cell(row: list[str], name: str) -> str:
        i = columns.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        case_id = cell(row, "case") or f"row{line}"
        problems = []
        images: dict[str, Path] = {}
        for m in MODALITIES:
            value = cell(row, m)
            if not value:
                problems.append(f"missing modality {m}")
                continue
            images[m] = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
            if not images[m].exists():
                problems.append(f"{m} file not found: {images[m]}")
        seg_cell = cell(row, "seg")
        seg = ((base / seg_cell).resolve() if not Path(seg_cell).is_absolute() else Path(seg_cell)) if seg_cell else None
        if seg is not None and not seg.exists():
            problems.append(f"seg file not found: {seg}")
        try:
            convention = LabelConvention(cell(row, "convention") or LabelConvention.AUTO.value)
        except ValueError:
            problems.append(f"unknown label convention {cell(row, 'convention')!r}")
            convention = LabelConvention.AUTO
        if problems:
            result.problems.append(DiscoveryProblem(case_id, f"{path} line {line}: {'; '.join(problems)}"))
        else:
            result.cases.append(RawCase(case_id, images, seg, convention))
    return result


def _reject_duplicates(result: Discovery) -> Discovery:
    """Fail every case whose id occurs more than once (which one is meant cannot be guessed)."""
    ids = Counter([c.id for c in result.cases] + [p.case_id for p in result.problems])
    dup = {case_id for case_id, n in ids.items() if n > 1}
    if not dup:
        return result
    kept = [c for c in result.cases if c.id not in dup]
    problems = [p for p in result.problems if p.case_id not in dup]
    for case_id in sorted(dup):
        places = [str(c.images[MODALITIES[1]].parent) for c in result.cases if c.id == case_id]
        places += [p.reason.split(":")[0] for p in result.problems if p.case_id == case_id]
        problems.append(DiscoveryProblem(case_id, f"duplicate case id {case_id!r} ({ids[case_id]} times: "
                                                  f"{', '.join(places)})"))
    return Discovery(result.root, result.layout, kept, problems)


def discover(root: Path, layout: Layout | str = Layout.AUTO) -> Discovery:
    """Find the raw cases under ``root`` (a folder, or a CSV file) in ``layout`` (auto-detected by default).

    Raises DatasetError when ``root`` is missing or holds no case in any known layout.
    """
    root = Path(root)
    layout = Layout(layout)
    if not root.exists():
        raise DatasetError(f"{root}: input not found; expected a folder of raw cases or a CSV file")
    if root.is_file():
        if layout not in (Layout.AUTO, Layout.CSV) or root.suffix.lower() != ".csv":
            raise DatasetError(f"{root}: expected a folder of raw cases or a .csv file (layout {layout.value})")
        result = _discover_csv(root)
    elif layout == Layout.CSV:
        csvs = sorted(root.glob("*.csv"))
        if len(csvs) != 1:
            raise DatasetError(f"{root}: --layout csv expects one .csv file there (found {len(csvs)}); pass the CSV itself")
        result = _discover_csv(csvs[0])
    elif layout == Layout.NNUNET or (layout == Layout.AUTO and (root / "imagesTr").is_dir()):
        if not (root / "imagesTr").is_dir():
            raise DatasetError(f"{root}: --layout nnunet expects an imagesTr/ folder here")
        result = _discover_nnunet(root)
    else:
        result = _discover_folders(root, layout)
    result = _reject_duplicates(result)
    result.cases.sort(key=lambda c: c.id)
    result.problems.sort(key=lambda p: p.case_id)
    log.info("discovered %d cases (%s layout), %d with problems", len(result.cases), result.layout.value,
             len(result.problems))
    return result


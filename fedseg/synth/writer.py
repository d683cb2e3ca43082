"""Write synthetic cases to disk in a raw layout that ``fedseg preprocess`` discovers.

Layouts (labels in each layout's own convention; internally ET is 3):

- ``brats2021``: ``OUT/<ID>/<ID>_{t1,t1ce,t2,flair,seg}.nii.gz``, ET written as 4 (labels 0/1/2/4).
- ``brats2023``: ``OUT/<ID>/<ID>-{t1n,t1c,t2w,t2f,seg}.nii.gz``, ET written as 3.
- ``nnunet``: ``OUT/imagesTr/<ID>_000{0..3}.nii.gz`` (0 t1, 1 t1ce, 2 t2, 3 flair),
  ``OUT/labelsTr/<ID>.nii.gz`` (ET 3) and ``OUT/dataset.json`` (nnU-Net v2 style).

Ground truth for tests, named so that discovery ignores it: the brain mask
``OUT/<ID>/<ID>_brainmask.nii.gz`` and ``OUT/<ID>/<ID>_truth.json`` (BraTS layouts), or
``OUT/brainmasks/<ID>.nii.gz`` and ``OUT/truth/<ID>_truth.json`` (nnU-Net). The truth file holds the
applied misalignment per modality (see :mod:`fedseg.synth.case`), the profile, the raw grids and the
tumour that was drawn. Every file is written atomically; the same seed gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedseg.errors import DatasetError
from fedseg.fsutil import atomic_write_json
from fedseg.labels import FROM_INTERNAL, MODALITIES, REFERENCE_MODALITY, LabelConvention, Layout, from_internal
from fedseg.synth.case import SynthCase, make_case
from fedseg.synth.profiles import PROFILES, HeadModel

__all__ = ["case_files", "case_ids", "check_outputs", "truth_record", "write_case", "write_cases", "write_nnunet_dataset_json"]

#: Called after each case with (cases done, cases in total, case id).
Progress = Callable[[int, int, str], None]


_BRATS2023_NAMES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
#: The label convention each layout is written in (the nnU-Net dataset.json states brats2023 numbering).
_CONVENTION = {Layout.BRATS2021: LabelConvention.BRATS2021, Layout.BRATS2023: LabelConvention.BRATS2023,
               Layout.NNUNET: LabelConvention.BRATS2023}


def _writable(layout: Layout | str) -> Layout:
    layout = Layout(layout)
    if layout not in _CONVENTION:
        raise DatasetError(f"synth: expected a layout among {', '.join(lay.value for lay in _CONVENTION)}, "
                           f"got {layout.value}")
    return layout


def case_files(out: Path, case_id: str, layout: Layout) -> dict[str, Path]:
    """Return every path a case occupies: keys are the modalities, ``seg``, ``brainmask`` and ``truth``."""
    out = Path(out)
    if layout is Layout.NNUNET:
        files = {m: out / "imagesTr" / f"{case_id}_{i:04d}.nii.gz" for i, m in enumerate(MODALITIES)}
        files["seg"] = out / "labelsTr" / f"{case_id}.nii.gz"
        files["brainmask"] = out / "brainmasks" / f"{case_id}.nii.gz"
        files["truth"] = out / "truth" / f"{case_id}_truth.json"
        return files
    folder = out / case_id
    if layout is Layout.BRATS2021:
        files = {m: folder / f"{case_id}_{m}.nii.gz" for m in MODALITIES}
        files["seg"] = folder / f"{case_id}_seg.nii.gz"
    else:
        files = {m: folder / f"{case_id}-{_BRATS2023_NAMES[m]}.nii.gz" for m in MODALITIES}
        files["seg"] = folder / f"{case_id}-seg.nii.gz"
    files["brainmask"] = folder / f"{case_id}_brainmask.nii.gz"
    files["truth"] = folder / f"{case_id}_truth.json"
    return files


def _grid_dict(image) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    return {
        "size": [int(v) for v in image.GetSize()],
        "spacing": [float(v) for v in image.GetSpacing()],
        "origin": [float(v) for v in image.GetOrigin()],
        "direction": [float(v) for v in image.GetDirection()],
    }


def truth_record(case: SynthCase, *, layout: Layout, profile_index: int | None, seed: int | None) -> dict[str, object]:
    """Return the JSON-ready ground truth of a case (what its truth file holds)."""
    t = case.tumour
    return {
        "case_id": case.case_id,
        "layout": layout.value,
        "label_values": {"NCR": 1, "ED": 2, "ET": FROM_INTERNAL[_CONVENTION[layout]][3]},
        "reference_modality": REFERENCE_MODALITY,
        "misalignment": case.misalignment,
        "misalignment_convention": (
            "M(q) = R (q - center_mm) + center_mm + translation_mm maps a T1ce physical point (LPS mm) to the same"
            " head point in the modality; it is the fixed->moving transform of a registration with fixed=t1ce."
            " rotation_deg: sitk.Euler3DTransform angles (x, y, z; ZXY order); matrix: R row-major."
        ),
        "has_et": case.has_et,
        "tumour": {
            "centre_mm": list(t.centre_mm),
            "core_radius_mm": t.core_radius_mm,
            "necrosis_radius_mm": t.necrosis_radius_mm,
            "whole_radius_mm": t.whole_radius_mm,
        },
        "grids": {m: _grid_dict(img) for m, img in case.images.items()},
        "profile_index": profile_index,
        "profile": case.profile.to_dict(),
        "seed": seed,
        **case.extra,
    }


def write_case(case: SynthCase, out: Path, layout: Layout, *, profile_index: int | None = None, seed: int | None = None) -> Path:
    """Write one case (images, label in the layout's convention, brain mask, truth JSON); return its main path."""
    import SimpleITK as sitk

    from fedseg.imaging.io import write_image

    files = case_files(out, case.case_id, layout)
    for modality in MODALITIES:
        write_image(case.images[modality], files[modality])
    label = case.label
    if _CONVENTION[layout] is not LabelConvention.BRATS2023:  # the internal numbering is written as it is
        label = sitk.GetImageFromArray(from_internal(sitk.GetArrayFromImage(label), _CONVENTION[layout]))
        label.CopyInformation(case.label)
    write_image(label, files["seg"])
    write_image(case.brain_mask, files["brainmask"])
    atomic_write_json(files["truth"], truth_record(case, layout=layout, profile_index=profile_index, seed=seed))
    return files["seg"].parent.parent if layout is Layout.NNUNET else files["seg"].parent


def write_nnunet_dataset_json(out: Path) -> None:
    """Write ``OUT/dataset.json`` (nnU-Net v2: channel_names, labels, numTraining, file_ending)."""
    count = len(list((Path(out) / "labelsTr").glob("*.nii.gz")))
    atomic_write_json(
        Path(out) / "dataset.json",
        {
            "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
            "labels": {"background": 0, "NCR": 1, "ED": 2, "ET": 3},
            "numTraining": count,
            "file_ending": ".nii.gz",
            "name": "fedseg-synth",
            "description": "Synthetic brain-tumour phantoms written by fedseg synth (internal label convention).",
        },
    )


def case_ids(cases: int, profile: int, prefix: str | None) -> list[str]:
    """Return the ids ``write_cases`` gives its cases: ``<prefix>_<nnnn>``, prefix ``SYN<profile>`` by default."""
    stem = prefix if prefix is not None else f"SYN{profile}"
    return [f"{stem}_{i:04d}" for i in range(cases)]


def check_outputs(
    out: Path, *, cases: int, profile: int = 0, layout: Layout = Layout.BRATS2021, prefix: str | None = None, force: bool = False
) -> list[str]:
    """Validate a ``write_cases`` request before any work; return the case ids it would write.

    Raises DatasetError when ``out`` is a file, the profile or prefix is invalid, ``cases`` < 1, or a
    case's files already exist (unless ``force``).
    """
    out, layout = Path(out), _writable(layout)
    if profile not in PROFILES:
        raise DatasetError(f"synth: expected a profile among {sorted(PROFILES)}, got {profile}")
    if cases < 1:
        raise DatasetError(f"synth: expected at least 1 case, got {cases}")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: expected an output folder, found a file")
    if prefix is not None and (not prefix or any(c in prefix for c in "/\\ -") or prefix.startswith(".")):
        raise DatasetError(f"synth: prefix {prefix!r} must be non-empty, not start with '.', and contain no '/', '\\', '-' or space")
    ids = case_ids(cases, profile, prefix)
    if not force:
        existing = [p for cid in ids for p in case_files(out, cid, layout).values() if p.exists()]
        if existing:
            raise DatasetError(f"{existing[0]}: already exists ({len(existing)} file(s) of these cases); use --force to overwrite")
    return ids


def write_cases(
    out: Path,
    *,
    cases: int,
    profile: int = 0,
    layout: Layout = Layout.BRATS2021,
    seed: int = 0,
    size_scale: float = 1.0,
    prefix: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    anatomy: HeadModel | str | None = None,
) -> list[Path]:
    """Make ``cases`` synthetic cases of site ``profile`` and write them under ``out``; return the case paths.

    ``anatomy`` overrides the profile's head model (:meth:`SiteProfile.with_head`; None keeps it).

    Case ``i`` uses the generator ``default_rng([seed, profile, i])``, so a case does not depend on how
    many others are written. Raises DatasetError when ``out`` is a file, the profile is unknown, or
    a case's files already exist (unless ``force``). For nnU-Net the returned path is ``out`` itself
    per case (its files are spread over imagesTr/labelsTr).
    """
    out = Path(out)
    layout = _writable(layout)
    ids = check_outputs(out, cases=cases, profile=profile, layout=layout, prefix=prefix, force=force)
    site = PROFILES[profile] if anatomy is None else PROFILES[profile].with_head(anatomy)
    written: list[Path] = []
    for i, case_id in enumerate(ids):
        rng = np.random.default_rng([seed, profile, i])
        case = make_case(rng, site, case_id=case_id, size_scale=size_scale)
        written.append(write_case(case, out, layout, profile_index=profile, seed=seed))
        if progress is not None:
            progress(i + 1, cases, case_id)
    if layout is Layout.NNUNET:
        write_nnunet_dataset_json(out)
    return written

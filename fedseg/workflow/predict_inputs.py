"""Cases to predict from the command line: raw case folders (preprocessed on the fly, in memory) or site datasets.

An input path is a **site dataset** when it holds a ``dataset.json`` of the site-dataset format; anything
else goes through raw-case discovery (every layout ``fedseg preprocess`` accepts: BraTS 2018-2022,
BraTS 2023+, nnU-Net raw, CSV). A raw case is preprocessed with the plan's ``[preprocessing]`` settings (an
:class:`~fedseg.inference.spec.InferenceSpec` carries them) into memory only; nothing is written into the
input or the site's data. Its segmentation, if present, is **not** read during preprocessing (it must not
steer the crop of a prediction) but decides, over the whole input, the label convention of the outputs.

This composes discovery (data), preprocessing (workflow) and inference inputs, so it lives here and not in
:mod:`fedseg.inference`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from fedseg.data.dataset import load_dataset
from fedseg.data.discovery import RawCase, discover
from fedseg.data.label_scan import decide_dataset_labels
from fedseg.errors import DatasetError
from fedseg.fsutil import refuse_output_overlap
from fedseg.inference.sources import InputCase, PreparedCase, check_channels, dataset_inputs, is_site_dataset
from fedseg.inference.spec import InferenceSpec
from fedseg.labels import REFERENCE_MODALITY

__all__ = ["collect_inputs", "refuse_output_among_inputs"]


def _raw_loader(case: RawCase, spec: InferenceSpec) -> Callable[[], PreparedCase]:
    def load() -> PreparedCase:
        from fedseg.workflow.preprocess.case import preprocess_case

        convention = case.convention.value  # decided over the whole input by decide_dataset_labels
        # the segmentation must not steer preprocessing (the crop grows to contain labelled tumour)
        result = preprocess_case(dataclasses.replace(case, seg=None), spec.preprocessing)
        image = check_channels(result.image, spec, case.id, str(case.images.get(REFERENCE_MODALITY, "")))
        return PreparedCase(image, result.geometry, convention, None)

    return load


def refuse_output_among_inputs(out: Path, inputs: Sequence[Path], *, plan: Path, model: Path) -> None:
    """Refuse an output folder that is, or lies in, an input (a raw folder, a site dataset) or is the plan or model.

    Label maps are written as ``<ID>.nii.gz``: in an nnU-Net ``labelsTr/`` or a site dataset they would
    replace the site's own files. OutputOverlapError naming both.
    """
    files = {"plan": plan, "model": model, **{f"input {p}": p for p in map(Path, inputs) if not p.is_dir()}}
    folders = {f"input {p}": p for p in map(Path, inputs) if p.is_dir()}
    refuse_output_overlap(out, files, folders=folders)


def collect_inputs(inputs: Sequence[Path], spec: InferenceSpec) -> list[InputCase]:
    """Return every case of ``inputs`` (site datasets and raw folders/CSVs), duplicates as problems."""
    found: list[InputCase] = []
    for path in map(Path, inputs):
        if not path.exists():
            raise DatasetError(f"{path}: input not found; expected a raw case folder, a CSV or a site dataset")
        if is_site_dataset(path):
            found += dataset_inputs(load_dataset(path), spec)
            continue
        discovery, _ = decide_dataset_labels(discover(path))
        found += [InputCase(p.case_id, str(path), None, p.reason) for p in discovery.problems]
        found += [InputCase(c.id, str(c.images.get(REFERENCE_MODALITY, path)), _raw_loader(c, spec))
                  for c in discovery.cases]
    seen: dict[str, str] = {}
    out = []
    for case in found:
        if case.case_id in seen:
            out.append(dataclasses.replace(case, load=None, problem=f"duplicate case id {case.case_id!r} "
                                                                    f"(also in {seen[case.case_id]})"))
            continue
        seen[case.case_id] = case.source
        out.append(case)
    return out

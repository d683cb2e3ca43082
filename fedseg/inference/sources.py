"""Cases to predict or score: the cases of a site dataset, and the input records every source fills.

:class:`InputCase` is one case to predict (a loader, or a problem that fails it alone); :class:`PreparedCase`
what a loader returns (the model input on its stored grid, the geometry back to the scan, the label
convention, the label if any). Raw case folders are turned into input cases by the preprocessing
composition (:func:`fedseg.workflow.predict_inputs.collect_inputs`), which may read and preprocess images.

Problems that concern one case (a missing modality, a duplicate id) become :class:`InputCase` entries
with ``problem`` set, so that case is reported as failed and the others go on. Problems that concern a
whole input (a site dataset made for other modalities) raise :class:`~fedseg.errors.DatasetError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedseg.data.dataset import DATASET_FORMAT, CaseReader, SiteDataset
from fedseg.errors import DatasetError, ImageError
from fedseg.geometry import CaseGeometry
from fedseg.inference.spec import InferenceSpec

__all__ = ["InputCase", "PreparedCase", "check_channels", "dataset_inputs", "is_site_dataset", "reader_inputs"]

log = logging.getLogger(__name__)


@dataclass
class PreparedCase:
    """One case ready for the network: ``image`` float32 [C, Z, Y, X] on the stored grid, its geometry,
    the internal label on that grid when known (evaluation only) and the convention to write labels in."""

    image: np.ndarray
    geometry: CaseGeometry
    convention: str
    label: np.ndarray | None = None


@dataclass(frozen=True)
class InputCase:
    """A case found in the inputs; ``load`` reads or preprocesses it (lazily, one case at a time)."""

    case_id: str
    source: str
    load: Callable[[], PreparedCase] | None
    problem: str | None = None


def is_site_dataset(path: Path) -> bool:
    """Return whether ``path`` is a site dataset folder (its dataset.json has the site-dataset format)."""
    meta = Path(path) / "dataset.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text("utf-8")).get("format") == DATASET_FORMAT
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def check_channels(image: np.ndarray, spec: InferenceSpec, case_id: str, where: str) -> np.ndarray:
    want = spec.in_channels
    if image.ndim != 4 or image.shape[0] != want:
        raise ImageError(f"case {case_id} ({where}): expected {want} channels "
                         f"({', '.join(spec.preprocessing.modalities)}) as the plan's model takes, "
                         f"got an image of shape {tuple(image.shape)}")
    return image


def dataset_inputs(dataset: SiteDataset, spec: InferenceSpec, split: str = "all") -> list[InputCase]:
    """Return the cases of ``split`` of a site dataset; DatasetError if it was made for other modalities."""
    modalities = tuple(spec.preprocessing.modalities)
    if dataset.modalities != modalities:
        raise DatasetError(f"{dataset.root}: the dataset holds modalities {list(dataset.modalities)}, "
                           f"the plan's model expects {list(modalities)}")
    stored = dataset.preprocessing.get("spacing")
    if stored is not None and not np.allclose(stored, spec.preprocessing.spacing):
        log.warning("%s: preprocessed at %s mm, the plan says %s mm; predictions may be poor",
                    dataset.root, stored, spec.preprocessing.spacing)

    def check(image: np.ndarray, case_id: str, where: str) -> np.ndarray:
        return check_channels(image, spec, case_id, where)

    records = dataset.split(split)
    return reader_inputs([dataset.reader(c) for c in records], [c.id for c in records], check=check)


def reader_inputs(readers: Sequence[CaseReader], case_ids: Sequence[str] | None = None, *,
                  check: Callable[[np.ndarray, str, str], np.ndarray] | None = None) -> list[InputCase]:
    """Return one case per stored-case reader (ids default to the file names); each reads its file when loaded.

    ``check(image, case_id, path)`` may refuse an image (raise) or return it; the label is read when the
    case has one.
    """
    ids = list(case_ids) if case_ids is not None else [Path(r.path).stem for r in readers]

    def loader(reader: CaseReader, case_id: str) -> Callable[[], PreparedCase]:
        def load() -> PreparedCase:
            with reader:
                image = reader.image()
                if check is not None:
                    image = check(image, case_id, str(reader.path))
                label = reader.label() if reader.has_label else None
                return PreparedCase(image, reader.geometry(), reader.label_convention, label)

        return load

    return [InputCase(case_id, str(reader.path), loader(reader, case_id)) for reader, case_id in zip(readers, ids)]

"""The site dataset: ``dataset.json`` plus one HDF5 file per case (DESIGN.md §4.2). It never leaves a site.

Case file ``cases/<ID>.h5``:

* ``image``      float16/float32 [C, Z, Y, X], C = the modalities in ``dataset.json`` order; chunked per
  channel in 32³ blocks and gzip-compressed so random patches read only what they need.
* ``brain_mask`` uint8 [Z, Y, X], 1 inside the brain.
* ``label``      uint8 [Z, Y, X] in the internal convention (0 background, 1 NCR/NETC, 2 ED/SNFH, 3 ET),
  present only when the raw case had a segmentation.
* attributes: the :class:`CaseGeometry` fields (ITK order: x, y, z) that map the stored grid back onto
  the original reference scan, plus ``case_id`` and ``label_convention`` of the raw input.

``dataset.json`` lists every written case with its split, QC figures and warnings; ``"status":
"flagged"`` (with ``"flags"``, the reasons) marks a case the QC gate found implausible: it is left out of
every split until ``"accepted": true`` is set, by ``fedseg preprocess ... --accept ID`` or by hand.

Arrays are indexed [Z, Y, X] (SimpleITK's ``GetArrayFromImage`` order) while geometry is x, y, z.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import DatasetError
from fedseg.fsutil import atomic_path, atomic_write_json
from fedseg.geometry import CaseGeometry

__all__ = [
    "DATASET_FORMAT",
    "CaseReader",
    "CaseRecord",
    "SiteDataset",
    "load_dataset",
    "write_case",
    "write_dataset_json",
]

DATASET_FORMAT = "fedseg-site-dataset/1"
CASES_DIR = "cases"
SPLITS = ("train", "val", "test")


@dataclass
class CaseRecord:
    """One case's entry in ``dataset.json``."""

    id: str
    split: str
    file: str
    sources: dict[str, str] = field(default_factory=dict)  # input path name -> SHA-256
    has_label: bool = False
    label_convention: str = "brats2021"
    qc: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: ``ok``, or ``flagged`` by the QC gate (reasons in ``flags``): a flagged case is left out of every
    #: split until a person sets ``accepted`` (``fedseg preprocess ... --accept ID`` or by hand here).
    status: str = "ok"
    flags: list[str] = field(default_factory=list)
    accepted: bool = False

    @property
    def usable(self) -> bool:
        """Return whether the case may be used for training, validation or evaluation."""
        return self.status != "flagged" or self.accepted


def write_case(
    path: Path,
    *,
    case_id: str,
    image: np.ndarray,
    brain_mask: np.ndarray,
    geometry: CaseGeometry,
    label: np.ndarray | None = None,
    label_convention: str = "brats2021",
    dtype: str = "float16",
) -> None:
    """Write one case file atomically (temp file, fsync, rename); equal arrays give equal bytes (no timestamps)."""
    import h5py

    if image.ndim != 4:
        raise DatasetError(f"case {case_id}: image must be [C, Z, Y, X], got shape {image.shape}")
    spatial = image.shape[1:]
    for name, arr in (("brain_mask", brain_mask), ("label", label)):
        if arr is not None and arr.shape != spatial:
            raise DatasetError(f"case {case_id}: {name} shape {arr.shape} differs from image {spatial}")
    chunks = (1, *(min(32, s) for s in spatial))
    with atomic_path(Path(path)) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image.astype(dtype), chunks=chunks, compression="gzip",
                             compression_opts=1, shuffle=True, track_times=False)
            f.create_dataset("brain_mask", data=brain_mask.astype(np.uint8), chunks=chunks[1:],
                             compression="gzip", compression_opts=1, track_times=False)
            if label is not None:
                f.create_dataset("label", data=label.astype(np.uint8), chunks=chunks[1:],
                                 compression="gzip", compression_opts=1, track_times=False)
            for key, value in geometry.to_attrs().items():
                f.attrs[key] = value
            f.attrs["case_id"] = case_id
            f.attrs["label_convention"] = label_convention


class CaseReader:
    """Read access to one case file; the HDF5 handle opens on first use (safe to pickle into workers).

    The file is checked once, when first opened (:func:`~fedseg.data.case_check.check_case_file`:
    channels = ``modalities`` when given, shapes, dtypes, label values, size bounds, geometry); a copy
    pickled into a worker after that keeps the verdict and reopens without scanning again.
    """

    def __init__(self, path: Path, modalities: tuple[str, ...] | None = None,
                 checked: set[tuple[int, ...]] | None = None) -> None:
        self.path = Path(path)
        self.modalities = modalities
        self._file: Any = None
        self._checked = False
        self._seen = checked  # the dataset's record of files already checked (by inode, size, mtime)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _file=None)  # workers reopen their own handle

    def _h5(self) -> Any:
        if self._file is None:
            import h5py

            from fedseg.data.case_check import check_case_file, open_error

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise open_error(self.path, exc) from None
            st = os.fstat(self._file.id.get_vfd_handle()) if self._seen is not None else None
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else ()
            if not self._checked and stamp not in (self._seen or ()):
                try:
                    check_case_file(self._file, self.path, self.modalities)
                except BaseException:
                    self.close()
                    raise
                if self._seen is not None:
                    self._seen.add(stamp)
            self._checked = True
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return the spatial shape (Z, Y, X)."""
        return tuple(self._h5()["image"].shape[1:])  # type: ignore[return-value]

    @property
    def num_channels(self) -> int:
        return int(self._h5()["image"].shape[0])

    @property
    def has_label(self) -> bool:
        return "label" in self._h5()

    def image(self, region: tuple[slice, slice, slice] | None = None) -> np.ndarray:
        """Return the image (or a [Z, Y, X] region of it) as float32 [C, ...]."""
        ds = self._h5()["image"]
        data = ds[(slice(None), *region)] if region is not None else ds[()]
        return np.asarray(data, dtype=np.float32)

    def label(self, region: tuple[slice, slice, slice] | None = None) -> np.ndarray:
        """Return the internal label map (0..3), or a region of it; DatasetError if unlabelled."""
        f = self._h5()
        if "label" not in f:
            raise DatasetError(f"{self.path}: this case has no label")
        return np.asarray(f["label"][region] if region is not None else f["label"][()], dtype=np.uint8)

    def brain_mask(self) -> np.ndarray:
        return np.asarray(self._h5()["brain_mask"][()], dtype=np.uint8)

    def geometry(self) -> CaseGeometry:
        return CaseGeometry.from_attrs(self._h5().attrs, str(self.path))

    @property
    def label_convention(self) -> str:
        return str(self._h5().attrs.get("label_convention", "brats2021"))


@dataclass
class SiteDataset:
    """A loaded site dataset: its folder and the parsed ``dataset.json``."""

    root: Path
    meta: dict[str, Any]
    cases: list[CaseRecord]
    # Case files already checked by one of this dataset's readers: training opens each case several
    # times (label check, patch index, validation), and the label scan need not run on each.
    checked: set[tuple[int, ...]] = field(default_factory=set, repr=False, compare=False)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.meta["modalities"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.meta["preprocessing"])

    @property
    def config_sha256(self) -> str:
        return str(self.meta["config_sha256"])

    def split(self, name: str) -> list[CaseRecord]:
        """Return the usable cases of split ``name`` (``all`` for every split): flagged cases that no
        one accepted are left out (see :attr:`CaseRecord.usable`; :meth:`flagged` lists them)."""
        if name != "all" and name not in SPLITS:
            raise DatasetError(f"{self.root}: unknown split {name!r}; expected train, val, test or all")
        return [c for c in self.cases if c.usable and (name == "all" or c.split == name)]

    def flagged(self) -> list[CaseRecord]:
        """Return the cases the QC gate flagged that no one has accepted yet."""
        return [c for c in self.cases if not c.usable]

    def reader(self, case: CaseRecord) -> CaseReader:
        return CaseReader(self.root / case.file, self.modalities, self.checked)

    def readers(self, split: str) -> Iterator[tuple[CaseRecord, CaseReader]]:
        for case in self.split(split):
            yield case, self.reader(case)


def write_dataset_json(root: Path, meta: dict[str, Any], cases: list[CaseRecord]) -> None:
    """Write ``dataset.json`` atomically; ``meta`` holds modalities, preprocessing, config_sha256, failed."""
    body = dict(meta, format=DATASET_FORMAT, cases=[asdict(c) for c in cases])
    atomic_write_json(Path(root) / "dataset.json", body)


def load_dataset(root: Path) -> SiteDataset:
    """Read ``ROOT/dataset.json``; DatasetError naming the file when it is missing or malformed."""
    root = Path(root)
    path = root / "dataset.json"
    if not root.is_dir():
        raise DatasetError(f"{root}: expected a site dataset folder (made by `fedseg preprocess`)")
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; is {root} a site dataset made by `fedseg preprocess`?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot parse ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: expected format {DATASET_FORMAT!r}, got {meta.get('format')!r}")
    try:
        cases = [CaseRecord(**c) for c in meta.pop("cases")]
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: malformed case list ({exc})") from None
    for key in ("modalities", "preprocessing", "config_sha256"):
        if key not in meta:
            raise DatasetError(f"{path}: missing key {key!r}")
    for case in cases:
        if case.split not in SPLITS:
            raise DatasetError(f"{path}: case {case.id} has unknown split {case.split!r}")
        if case.status not in ("ok", "flagged") or not isinstance(case.accepted, bool):
            raise DatasetError(f"{path}: case {case.id}: status must be 'ok' or 'flagged' and accepted "
                               f"true or false, got {case.status!r} and {case.accepted!r}")
    return SiteDataset(root=root, meta=meta, cases=cases)

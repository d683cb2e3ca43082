"""Check a case file of a site dataset once, when it is opened, before any array is read from it.

A case file (``cases/<ID>.h5``, layout in :mod:`fedseg.data.dataset`) is as untrusted as any other input:
a tampered file must not train, sign an update or end in a traceback. :func:`check_case_file` runs on an
open ``h5py.File`` and raises :class:`~fedseg.errors.DatasetError` naming the file and what was expected.
Shapes and dtypes come from the HDF5 metadata, so an absurd declared shape (4×4096³) is refused before
a byte of it is read or allocated; label values are scanned slab by slab (bounded memory), once per open,
never per patch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedseg.errors import DatasetError

__all__ = ["MAX_AXIS", "MAX_VOXELS", "MIN_AXIS", "check_case_file", "open_error"]

# Largest axis of a stored case. A whole head at 0.5 mm is ~500 voxels across; 1024 leaves room for any
# MRI grid while refusing a declared shape built to exhaust memory.
MAX_AXIS = 1024
# Largest number of voxels per channel: 2**27 (= 512³, 134 M). Four float32 channels are then at most
# 2 GiB, the most one training case may ask of a site's RAM; BraTS cases are 240×240×155 (8.9 M).
MAX_VOXELS = 2**27
# Smallest axis. The patch sampler zero-pads a case smaller than the patch, so no patch size sets a
# minimum; below 4 voxels an axis holds no 3-D anatomy (a 1-voxel "image" is a forged or broken file).
MIN_AXIS = 4
LABEL_MAX = 3  # internal convention: 0 background, 1 NCR/NETC, 2 ED/SNFH, 3 ET
_IMAGE_DTYPES = (np.float16, np.float32)
_GEOMETRY_LENGTHS = {"spacing": 3, "origin": 3, "direction": 9, "crop_box": 6, "resampled_size": 3,
                     "original_size": 3, "original_spacing": 3, "original_origin": 3, "original_direction": 9}
_INT_GEOMETRY = ("crop_box", "resampled_size", "original_size")


def open_error(path: Path, exc: BaseException) -> DatasetError:
    """Return the one-line error for a case file h5py cannot open (a folder, not HDF5, unreadable)."""
    if path.is_dir():
        return DatasetError(f"{path}: is a folder; expected an HDF5 case file")
    if not path.exists():
        return DatasetError(f"{path}: the case file is missing")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "signature not found" in first:
        return DatasetError(f"{path}: not an HDF5 file; expected a case file written by `fedseg preprocess`")
    return DatasetError(f"{path}: cannot open the case file ({first[:200]})")


def _dataset(f: Any, name: str, where: str) -> Any:
    import h5py

    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        found = "missing" if obj is None else f"a {type(obj).__name__}"
        raise DatasetError(f"{where}: expected an HDF5 dataset {name!r}, found {found}")
    return obj


def _check_spatial(shape: tuple[int, ...], where: str) -> None:
    if any(s < MIN_AXIS or s > MAX_AXIS for s in shape) or math.prod(shape) > MAX_VOXELS:
        raise DatasetError(f"{where}: image grid {shape}; expected each axis in {MIN_AXIS}..{MAX_AXIS} and at most "
                           f"{MAX_VOXELS} voxels per channel")


def _check_label_values(ds: Any, where: str) -> None:
    """Scan the label slab by slab along Z (chunk-aligned when chunked); refuse a value above 3."""
    step = ds.chunks[0] if ds.chunks else 8
    for z in range(0, ds.shape[0], step):
        top = int(np.max(ds[z:z + step]))
        if top > LABEL_MAX:
            raise DatasetError(f"{where}: label value {top} in slices {z}..{min(z + step, ds.shape[0]) - 1}; "
                               f"expected internal labels 0..{LABEL_MAX}")


def _check_geometry(attrs: Any, where: str) -> None:
    for name, length in _GEOMETRY_LENGTHS.items():
        if name not in attrs:
            raise DatasetError(f"{where}: missing geometry attribute {name!r}")
        value = np.asarray(attrs[name])
        kind = "i" if name in _INT_GEOMETRY else "if"
        if value.shape != (length,) or value.dtype.kind not in kind or not np.all(np.isfinite(value)):
            raise DatasetError(f"{where}: geometry attribute {name!r} is {value.dtype} {value.shape}; expected "
                               f"{length} finite {'integers' if kind == 'i' else 'numbers'}")


def check_case_file(f: Any, path: Path, modalities: Sequence[str] | None) -> None:
    """Validate an open case file against the dataset's ``modalities`` (None: any channel count)."""
    where = f"case {Path(path).stem} ({path})"
    image = _dataset(f, "image", where)
    if image.dtype.kind != "f" or image.dtype not in _IMAGE_DTYPES:
        raise DatasetError(f"{where}: image dtype {image.dtype}; expected float16 or float32")
    if image.ndim != 4:
        raise DatasetError(f"{where}: image shape {image.shape}; expected [C, Z, Y, X] (one 3-D volume per channel)")
    if modalities is not None and image.shape[0] != len(modalities):
        raise DatasetError(f"{where}: expected {len(modalities)} channels ({', '.join(modalities)}) in image "
                           f"[C, Z, Y, X], got shape {image.shape}")
    spatial = tuple(int(s) for s in image.shape[1:])
    _check_spatial(spatial, where)
    for name in ("brain_mask", "label"):
        if name == "label" and "label" not in f:
            continue
        ds = _dataset(f, name, where)
        if ds.shape != spatial or ds.dtype != np.uint8:
            raise DatasetError(f"{where}: {name} is {ds.dtype} {ds.shape}; expected uint8 {spatial} like the image")
    if "label" in f:
        _check_label_values(f["label"], where)
    _check_geometry(f.attrs, where)

"""Image I/O with SimpleITK: NIfTI files and DICOM series folders, read with clear errors, written atomically.

Arrays from :func:`to_array` are indexed [Z, Y, X]; SimpleITK geometry (spacing, origin, direction)
is in x, y, z order. Callers convert between the two explicitly.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedseg.errors import ImageError
from fedseg.fsutil import atomic_path

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["Grid", "check_geometry", "check_input_path", "from_array", "grid_of", "read_image", "same_grid", "to_array",
           "write_image"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Grid:
    """The physical grid of an image (ITK x, y, z order)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]


def grid_of(image: sitk.Image) -> Grid:
    """Return the grid of a SimpleITK image."""
    return Grid(
        size=tuple(int(v) for v in image.GetSize()),  # type: ignore[arg-type]
        spacing=tuple(float(v) for v in image.GetSpacing()),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in image.GetDirection()),
    )


def same_grid(a: Grid, b: Grid, *, tol_mm: float = 1e-3, tol_dir: float = 1e-4) -> bool:
    """Return whether two grids coincide: same size, spacing/origin within ``tol_mm``, direction within ``tol_dir``."""
    return (
        a.size == b.size
        and np.allclose(a.spacing, b.spacing, atol=tol_mm)
        and np.allclose(a.origin, b.origin, atol=tol_mm)
        and np.allclose(a.direction, b.direction, atol=tol_dir)
    )


def _read_dicom_series(folder: Path) -> sitk.Image:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ImageError(f"{folder}: expected a DICOM series in this folder, found none")
    if len(series) > 1:
        raise ImageError(f"{folder}: expected one DICOM series, found {len(series)}")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return reader.Execute()


def _check_nifti_complete(path: Path) -> None:
    """Raise ImageError when a NIfTI file holds fewer voxel bytes than its header declares.

    ITK's NIfTI reader zero-fills a truncated ``.nii`` or ``.nii.gz`` without any error, so the byte
    count is checked here: the header (via nibabel) gives the data offset and size; a gzip stream is
    decompressed to its end marker (in 1 MiB chunks, nothing kept) to count its bytes.
    """
    import zlib

    import nibabel as nib

    try:
        header = nib.load(str(path)).header
        shape = header.get_data_shape()
        expected = int(header.get_data_offset()) + int(np.prod(shape)) * header.get_data_dtype().itemsize
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for a broken header
        raise ImageError(f"{path}: cannot read the image (NIfTI header: {str(exc)[:200]})") from None
    if not path.name.lower().endswith(".gz"):
        size = path.stat().st_size
        if size < expected:
            raise ImageError(f"{path}: truncated NIfTI file ({size} bytes, the header declares {expected})")
        return
    total, finished = 0, False
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                while chunk:
                    total += len(decomp.decompress(chunk))
                    finished = decomp.eof
                    chunk = decomp.unused_data if decomp.eof else b""
                    if decomp.eof and chunk:  # a second gzip member follows
                        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        finished = False
    except zlib.error as exc:
        raise ImageError(f"{path}: corrupt gzip data ({exc})") from None
    if not finished or total < expected:
        raise ImageError(f"{path}: truncated NIfTI file ({total} bytes decompressed, the header declares {expected})")


def check_input_path(path: Path) -> None:
    """Raise ImageError naming ``path`` unless it is a regular file or a folder.

    A character or block device (``/dev/zero``), a FIFO or a socket would block a reader or never end,
    so it is refused before anything opens it.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the file ({exc.strerror})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    raise ImageError(f"{path}: is {kind}; expected an image file or a DICOM folder")


def check_geometry(image: sitk.Image, where: str) -> None:
    """Raise ImageError naming ``where`` for a zero-size axis or a non-finite or degenerate affine."""
    size = tuple(image.GetSize())
    if any(s == 0 for s in size):
        raise ImageError(f"{where}: has a zero-size dimension (size {size}); expected voxels along every axis")
    spacing, origin = np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin())
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(image.GetDimension(), -1)
    if not (np.all(np.isfinite(spacing)) and np.all(np.isfinite(origin)) and np.all(np.isfinite(direction))):
        raise ImageError(f"{where}: the header's affine (spacing, origin or direction) has NaN or infinite values")
    if np.any(spacing <= 0) or abs(np.linalg.det(direction)) < 1e-6:
        raise ImageError(f"{where}: degenerate affine (spacing {tuple(spacing.round(4))}, direction determinant "
                         f"{np.linalg.det(direction):.3g}); expected positive spacing and an invertible direction")


def _check_nifti_header(path: Path) -> None:
    """Refuse a NIfTI header with a zero-size axis or a non-finite affine before ITK reads it (ITK calls
    the first "not a NIfTI file" and silently replaces a NaN affine)."""
    import nibabel as nib

    try:
        header = nib.load(str(path)).header
        shape, affine = tuple(int(d) for d in header.get_data_shape()), header.get_best_affine()
    except Exception:  # noqa: BLE001 - a broken header is reported by ITK or _check_nifti_complete
        return
    if any(d == 0 for d in shape):
        raise ImageError(f"{path}: has a zero-size dimension (shape {shape}); expected voxels along every axis")
    if not np.all(np.isfinite(affine)):
        raise ImageError(f"{path}: the header's affine (spacing, origin or direction) has NaN or infinite values")


def read_image(path: Path, *, allow_4d: bool = False) -> sitk.Image:
    """Read a NIfTI file (or anything SimpleITK reads) or a DICOM series folder as a 3D image.

    Raises ImageError naming the path when the file is missing, unreadable, truncated (NIfTI files are
    checked against their header, since ITK zero-fills them silently) or not 3D.
    """
    import SimpleITK as sitk

    path = Path(path)
    check_input_path(path)
    is_nifti = path.is_file() and path.name.lower().endswith(_NIFTI_SUFFIXES)
    if is_nifti:
        _check_nifti_header(path)
    try:
        image = _read_dicom_series(path) if path.is_dir() else sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise ImageError(f"{path}: cannot read the image ({first[:200]})") from None
    if is_nifti:
        _check_nifti_complete(path)
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3 and not allow_4d:
        raise ImageError(f"{path}: expected a 3D image, found {dim}D of size {tuple(image.GetSize())}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageError(f"{path}: expected a scalar image, found {image.GetNumberOfComponentsPerPixel()} components per voxel")
    check_geometry(image, str(path))
    return image


def to_array(image: sitk.Image) -> np.ndarray:
    """Return a [Z, Y, X] copy of the voxels."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image)


def write_image(image: sitk.Image, path: Path, *, compress: bool = True) -> None:
    """Write ``image`` to ``path`` (.nii.gz etc.) atomically."""
    import SimpleITK as sitk

    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    # SimpleITK chooses the writer from the extension, so the temp file keeps the destination's suffix.
    with atomic_path(path) as tmp:
        real_tmp = tmp.with_name(tmp.name + suffix)
        try:
            sitk.WriteImage(image, str(real_tmp), compress)
            real_tmp.replace(tmp)
        except RuntimeError as exc:
            raise ImageError(f"{path}: cannot write the image ({str(exc).strip()[:200]})") from None
        finally:
            if real_tmp.exists():
                real_tmp.unlink()


def from_array(array: np.ndarray, reference: sitk.Image | Grid | None = None, **_: Any) -> sitk.Image:
    """Return a SimpleITK image of a [Z, Y, X] array, with the grid of ``reference`` when given."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    if reference is not None:
        grid = reference if isinstance(reference, Grid) else grid_of(reference)
        if tuple(image.GetSize()) != grid.size:
            raise ImageError(f"array of size {tuple(image.GetSize())} does not fit the reference grid {grid.size}")
        image.SetSpacing(grid.spacing)
        image.SetOrigin(grid.origin)
        image.SetDirection(grid.direction)
    return image

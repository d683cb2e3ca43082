"""Bad inputs refused with one line naming the file: devices, FIFOs, sockets, zero-size axes, NaN affines."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.errors import ImageError
from fedseg.imaging.io import check_geometry, check_input_path, read_image
from fedseg.imaging.resample import MAX_GRID_VOXELS, reference_grid


@pytest.mark.timeout(30)
def test_devices_fifos_and_sockets_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "t2.nii.gz"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(ImageError, match=r"t2\.nii\.gz: is a FIFO \(named pipe\); expected an image file"):
        read_image(fifo)
    with pytest.raises(ImageError, match=r"^/dev/zero: is a character device"):
        read_image(Path("/dev/zero"))
    sock_path = tmp_path / "s.nii"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(ImageError, match="is a socket"):
            check_input_path(sock_path)
    with pytest.raises(ImageError, match="file not found"):
        check_input_path(tmp_path / "missing.nii.gz")
    check_input_path(tmp_path)  # a DICOM folder is fine


def test_zero_size_axis_and_nan_affine_are_named(tmp_path: Path) -> None:
    header = nib.Nifti1Image(np.ones((1, 6, 7), np.float32), np.eye(4)).header
    header["dim"][1] = 0
    (tmp_path / "zero.nii").write_bytes(header.binaryblock + b"\0" * 4)
    with pytest.raises(ImageError, match=r"zero\.nii: has a zero-size dimension \(shape \(0, 6, 7\)\)"):
        read_image(tmp_path / "zero.nii")
    img = nib.Nifti1Image(np.random.default_rng(0).random((5, 6, 7)).astype(np.float32), np.eye(4))
    img.header.set_qform(np.eye(4), code=0)
    img.header["srow_x"] = [np.nan, 0, 0, 0]
    nib.Nifti1Image(img.dataobj, None, img.header).to_filename(tmp_path / "nan.nii.gz")
    with pytest.raises(ImageError, match=r"nan\.nii\.gz: the header's affine .* NaN or infinite"):
        read_image(tmp_path / "nan.nii.gz")
    nowhere = sitk.Image((4, 4, 4), sitk.sitkFloat32)
    nowhere.SetOrigin((float("nan"), 0.0, 0.0))  # what a DICOM series or another reader may hand over
    with pytest.raises(ImageError, match="^scan: the header's affine .* NaN"):
        check_geometry(nowhere, "scan")


def test_an_absurd_resampled_grid_is_refused_before_allocating() -> None:
    img = sitk.Image((64, 64, 40), sitk.sitkUInt8)
    img.SetSpacing((40.0, 40.0, 40.0))  # a header claiming 40 mm voxels: 2.6 x 2.6 x 1.6 m
    with pytest.raises(ImageError, match=r"^raw/t1ce\.nii\.gz: resampling its \(2560, 2560, 1600\) mm field .* "
                                         r"above the bound of 134,217,728"):
        reference_grid(img, (1.0, 1.0, 1.0), where="raw/t1ce.nii.gz")
    assert int(np.prod(reference_grid(img, (40.0, 40.0, 40.0)).GetSize())) <= MAX_GRID_VOXELS

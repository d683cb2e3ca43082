"""Which modality a label map lies on: the one grid it matches, --label-on among shared grids, else the order."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk

from fedseg.errors import ImageError
from fedseg.imaging.checked_read import LABEL_ON_ORDER, label_modality


def grid(size: tuple[int, int, int], spacing: tuple[float, float, float], origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


IMAGES = {"t1": grid((8, 8, 4), (1.0, 1.0, 3.0)), "t1ce": grid((8, 8, 4), (1.0, 1.0, 3.0)),
          "t2": grid((8, 8, 4), (1.0, 1.0, 3.0), (0.5, 0.0, 0.0)), "flair": grid((10, 10, 10), (1.2, 1.2, 1.2))}
WHERE = Path("case/seg.nii.gz")


def test_the_default_order_puts_the_reference_first() -> None:
    assert LABEL_ON_ORDER == ("t1ce", "t1", "t2", "flair")


def test_one_matching_grid_decides() -> None:
    assert label_modality(grid((10, 10, 10), (1.2, 1.2, 1.2)), WHERE, IMAGES) == ("flair", "on the flair grid")
    assert label_modality(grid((8, 8, 4), (1.0, 1.0, 3.0), (0.5, 0.0, 0.0)), WHERE, IMAGES)[0] == "t2"


def test_a_shared_grid_goes_to_label_on_else_to_the_order() -> None:
    label = grid((8, 8, 4), (1.0, 1.0, 3.0))  # t1 and t1ce share it
    assert label_modality(label, WHERE, IMAGES) == ("t1ce", "grid shared by t1ce, t1: t1ce first in the default order")
    assert label_modality(label, WHERE, IMAGES, "t1") == ("t1", "--label-on t1, a grid shared with t1ce")
    on, why = label_modality(label, WHERE, IMAGES, "flair")
    assert on == "t1ce" and why == "--label-on flair overruled: the label lies on the grid of t1ce, t1, not flair's"


def test_a_label_on_no_grid_names_every_grid_in_one_line() -> None:
    with pytest.raises(ImageError) as info:
        label_modality(grid((8, 8, 5), (1.0, 1.0, 3.0)), WHERE, IMAGES)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{WHERE}: the label's grid (size (8, 8, 5)")
    assert all(f"{m} (size" in message for m in IMAGES) and "spacing (1.2, 1.2, 1.2)" in message

"""The inference window: whole volume rounded up to the stride, at least the patch, capped (worked by hand)."""

from __future__ import annotations

import numpy as np
import torch

from fedseg.configs.model import ModelConfig
from fedseg.inference.sliding_window import sliding_window_predict
from fedseg.inference.window import inference_window, total_stride
from fedseg.model.unet import UNet3D


def test_whole_volume_rounded_up_to_the_stride() -> None:
    assert inference_window((20, 30, 17), (16, 16, 16), (2, 2, 2)) == (20, 30, 18)
    assert inference_window((10, 40, 40), (16, 16, 16), (4, 4, 4)) == (16, 40, 40)  # never below the patch


def test_over_the_cap_the_axis_furthest_above_the_patch_shrinks() -> None:
    assert inference_window((64, 16, 16), (16, 16, 16), (2, 2, 2), max_voxels=16 * 16 * 32) == (32, 16, 16)
    assert inference_window((64, 64, 16), (16, 16, 16), (8, 8, 8), max_voxels=16**3) == (16, 16, 16)


def test_total_stride_and_one_window_is_the_model_on_the_whole_volume() -> None:
    config = ModelConfig(widths=(4, 8), kernels=((3, 3, 3),) * 2, strides=((1, 1, 1), (2, 2, 2)), convs_per_stage=1)
    torch.manual_seed(0)
    model = UNet3D(config)
    assert total_stride(model) == (2, 2, 2)
    image = np.random.default_rng(0).normal(size=(4, 12, 10, 14)).astype(np.float32)
    window = inference_window(image.shape[1:], (8, 8, 8), total_stride(model))
    assert window == (12, 10, 14)
    probs = sliding_window_predict(model, image, patch_size=window)
    with torch.inference_mode():
        direct = torch.sigmoid(model.eval()(torch.from_numpy(image)[None]))[0].numpy()
    np.testing.assert_allclose(probs, direct, atol=1e-5)

"""Sliding-window prediction: tiling, Gaussian blending, padding, mirroring, bounded batches.

"Equals the direct forward pass" is checked in the two senses where it is exactly defined:
* a pointwise model (1x1x1 convolutions) gives the same logits for a voxel whatever window it sits in, so
  the blended result must equal the direct pass everywhere, for volumes smaller than, equal to and larger
  than the window and for anisotropic shapes;
* a model with a local receptive field (two 3x3x3 convolutions, radius 2) gives window-independent logits
  for voxels at least 2 voxels away from every window face that is not a volume face, so the result must
  equal the direct pass there (and, as a check that the test can fail, not near interior window faces).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.errors import ImageError
from fedseg.inference.sliding_window import gaussian_importance_map, sliding_window_predict, window_starts

torch.set_num_threads(1)


def _pointwise_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(2, 6, 1), torch.nn.LeakyReLU(0.01), torch.nn.Conv3d(6, 3, 1))


def _local_model() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.LeakyReLU(0.01), torch.nn.Conv3d(4, 3, 3, padding=1)
    )


def _direct(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x)[None]))[0].numpy()


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, *shape)).astype(np.float32)


PATCH = (8, 12, 10)
MODEL = _pointwise_model()


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(3, 26), st.integers(3, 30), st.integers(3, 26)),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.7]),
    batch_size=st.integers(1, 5),
    mirror=st.booleans(),
)
def test_pointwise_model_equals_direct_pass_for_any_shape(shape, overlap, batch_size, mirror) -> None:
    x = _image(shape)
    got = sliding_window_predict(
        MODEL, x, patch_size=PATCH, overlap=overlap, batch_size=batch_size, mirror=mirror
    )
    assert got.shape == (3, *shape) and got.dtype == np.float32
    np.testing.assert_allclose(got, _direct(MODEL, x), atol=2e-6)


@pytest.mark.parametrize(
    "shape",
    [(5, 7, 6), PATCH, (20, 12, 31), (8, 40, 4), (30, 30, 30)],
    ids=["smaller", "equal", "larger-aniso", "mixed", "larger"],
)
def test_named_shapes_equal_direct_pass(shape) -> None:
    x = _image(shape, seed=3)
    got = sliding_window_predict(MODEL, x, patch_size=PATCH, overlap=0.5, batch_size=2)
    np.testing.assert_allclose(got, _direct(MODEL, x), atol=2e-6)


def test_conv_model_on_volume_equal_to_window_is_exact() -> None:
    model = _local_model()
    x = _image(PATCH, seed=4)
    got = sliding_window_predict(model, x, patch_size=PATCH, overlap=0.5)
    np.testing.assert_allclose(got, _direct(model, x), atol=2e-6)


def test_conv_model_on_smaller_volume_equals_direct_pass_on_centred_zero_padding() -> None:
    model = _local_model()
    shape = (5, 12, 7)
    x = _image(shape, seed=5)
    padded = np.zeros((2, *PATCH), dtype=np.float32)
    # centred: (8-5)//2 = 1 before in z, 0 in y, (10-7)//2 = 1 before in x
    padded[:, 1:6, 0:12, 1:8] = x
    expected = _direct(model, padded)[:, 1:6, 0:12, 1:8]
    got = sliding_window_predict(model, x, patch_size=PATCH, overlap=0.5)
    np.testing.assert_allclose(got, expected, atol=2e-6)


def _clean_mask(shape: tuple[int, int, int], patch: tuple[int, int, int], overlap: float, radius: int) -> np.ndarray:
    """Voxels further than ``radius`` from every interior face of every window that covers them."""
    clean_axes = []
    for size, p, starts in zip(shape, patch, window_starts(shape, patch, overlap)):
        ok = np.ones(size, dtype=bool)
        for s in starts:
            for v in range(s, s + p):
                near_lo = s > 0 and v - s < radius
                near_hi = s + p < size and s + p - 1 - v < radius
                if near_lo or near_hi:
                    ok[v] = False
        clean_axes.append(ok)
    return clean_axes[0][:, None, None] & clean_axes[1][None, :, None] & clean_axes[2][None, None, :]


@pytest.mark.parametrize("shape", [(20, 30, 26), (8, 25, 10), (17, 12, 33)])
def test_conv_model_on_larger_volume_equals_direct_pass_away_from_window_seams(shape) -> None:
    model = _local_model()
    x = _image(shape, seed=6)
    got = sliding_window_predict(model, x, patch_size=PATCH, overlap=0.5, batch_size=3)
    direct = _direct(model, x)
    mask = _clean_mask(shape, PATCH, 0.5, radius=2)
    assert 0 < mask.sum() < mask.size
    np.testing.assert_allclose(got[:, mask], direct[:, mask], atol=2e-6)
    # the seams really differ (zero padding at window faces), so the mask above is doing work
    assert np.abs(got[:, ~mask] - direct[:, ~mask]).max() > 1e-4


def test_mirroring_averages_logits_of_all_eight_flips() -> None:
    model = _local_model()
    x = torch.from_numpy(_image(PATCH, seed=7))[None]
    with torch.no_grad():
        flips = [()] + [a for r in (1, 2, 3) for a in itertools.combinations((2, 3, 4), r)]
        logits = sum(model(x.flip(a)).flip(a) if a else model(x) for a in flips) / 8
    expected = torch.sigmoid(logits)[0].numpy()
    got = sliding_window_predict(model, x[0].numpy(), patch_size=PATCH, mirror=True)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    plain = sliding_window_predict(model, x[0].numpy(), patch_size=PATCH, mirror=False)
    assert np.abs(plain - got).max() > 1e-4  # the model is not flip-invariant, so TTA changes something


def test_batches_of_windows_are_bounded_and_the_result_independent_of_batch_size() -> None:
    model = _local_model()
    seen: list[int] = []
    handle = model.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].shape[0]))
    x = _image((20, 30, 26), seed=8)
    one = sliding_window_predict(model, x, patch_size=PATCH, overlap=0.5, batch_size=1)
    n_windows = int(np.prod([len(s) for s in window_starts((20, 30, 26), PATCH, 0.5)]))
    assert seen == [1] * n_windows
    seen.clear()
    four = sliding_window_predict(model, x, patch_size=PATCH, overlap=0.5, batch_size=4)
    handle.remove()
    assert max(seen) == 4 and sum(seen) == n_windows
    np.testing.assert_allclose(one, four, atol=1e-6)
    assert not model.training


def test_window_starts_follow_the_nnunet_rule() -> None:
    # 37 voxels, window 16, step <= 8: ceil(21 / 8) + 1 = 4 windows spread over 0..21
    assert window_starts((37, 16, 40), (16, 16, 16), 0.5) == [[0, 7, 14, 21], [0], [0, 8, 16, 24]]
    assert window_starts((20,), (8,), 0.0) == [[0, 6, 12]]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(8, 300), patch=st.integers(8, 96), overlap=st.floats(0.0, 0.9))
def test_windows_cover_the_volume_with_at_least_the_requested_overlap(size, patch, overlap) -> None:
    size = max(size, patch)
    (starts,) = window_starts((size,), (patch,), overlap)
    assert starts[0] == 0 and starts[-1] == size - patch
    steps = np.diff(starts)
    assert np.all(steps > 0) or len(starts) == 1
    assert np.all(steps <= patch * (1 - overlap) + 1)  # rounding may add at most one voxel


def test_gaussian_importance_map() -> None:
    g = gaussian_importance_map((9, 16, 7))
    assert g.dtype == np.float32 and g.shape == (9, 16, 7)
    assert g.max() == pytest.approx(1.0) and g.min() >= 1e-3
    np.testing.assert_array_equal(g, g[::-1, ::-1, ::-1])  # symmetric, so mirroring stays consistent
    assert g[4, 7, 3] == g.max() and g[4, 7, 3] > g[0, 7, 3] > g[0, 0, 0]
    # sigma = size / 8: one sigma away from the centre along x (size 16 -> 2 voxels) gives exp(-1/2)
    g = gaussian_importance_map((1, 1, 17))
    assert g[0, 0, 10] == pytest.approx(np.exp(-0.5 * (2 / (17 / 8)) ** 2), rel=1e-5)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ImageError, match=r"\[C, Z, Y, X\]"):
        sliding_window_predict(MODEL, np.zeros((4, 4, 4), np.float32), patch_size=PATCH)
    bad = _image((8, 8, 8))
    bad[0, 1, 1, 1] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        sliding_window_predict(MODEL, bad, patch_size=PATCH)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_predict(MODEL, _image((8, 8, 8)), patch_size=PATCH, overlap=1.0)


def test_agrees_with_monai_where_both_place_the_same_windows() -> None:
    """Same network, window, overlap and Gaussian: MONAI's blended output, up to float rounding.

    The shape is chosen so both tilings coincide ((size - window) divisible by the step): MONAI steps by
    int(window * (1 - overlap)) and clamps the last window, fedseg spreads the steps evenly. The window is
    odd so both Gaussians peak at exactly 1 (MONAI floors its unnormalised map at 1e-3, fedseg floors the
    map normalised to max 1; for even windows the floors differ slightly in the far tails).
    """
    inferers = pytest.importorskip("monai.inferers")
    model = _local_model()
    x = _image((17, 21, 13), seed=9)
    got = sliding_window_predict(model, x, patch_size=(9, 9, 9), overlap=0.5, batch_size=3)
    with torch.no_grad():
        logits = inferers.sliding_window_inference(torch.from_numpy(x)[None], roi_size=(9, 9, 9), sw_batch_size=3,
                                                   predictor=model, overlap=0.5, mode="gaussian", sigma_scale=0.125)
    np.testing.assert_allclose(got, torch.sigmoid(logits)[0].numpy(), atol=1e-6)

"""Tensor specs of a model config and NumPy <-> state dict conversions, on a two-stage model checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedseg.configs.model import ModelConfig
from fedseg.errors import ConfigError
from fedseg.model.spec import build_model, initial_weights, model_tensor_spec, numpy_to_state, state_to_numpy

TWO = ModelConfig(in_channels=2, widths=(2, 4), kernels=((3, 3, 3), (1, 1, 1)), strides=((1, 1, 1), (2, 2, 2)),
                  convs_per_stage=1)

EXPECTED = {  # every parameter, in module order: encoders, upsamples, decoders, head
    "encoders.0.0.conv.weight": (2, 2, 3, 3, 3), "encoders.0.0.conv.bias": (2,),
    "encoders.0.0.norm.weight": (2,), "encoders.0.0.norm.bias": (2,),
    "encoders.1.0.conv.weight": (4, 2, 1, 1, 1), "encoders.1.0.conv.bias": (4,),
    "encoders.1.0.norm.weight": (4,), "encoders.1.0.norm.bias": (4,),
    "upsamples.0.weight": (4, 2, 2, 2, 2), "upsamples.0.bias": (2,),
    "decoders.0.0.conv.weight": (2, 4, 3, 3, 3), "decoders.0.0.conv.bias": (2,),  # the skip doubles 2 -> 4 inputs
    "decoders.0.0.norm.weight": (2,), "decoders.0.0.norm.bias": (2,),
    "head.weight": (3, 2, 1, 1, 1), "head.bias": (3,),
}


def test_spec_names_shapes_and_order() -> None:
    spec = model_tensor_spec(TWO)
    assert list(spec) == list(EXPECTED)
    assert {k: s.shape for k, s in spec.items()} == EXPECTED
    assert {s.dtype for s in spec.values()} == {"float32"}
    assert {s.dtype for s in model_tensor_spec(TWO, "float16").values()} == {"float16"}
    # 108 + 2 + 4 | 8 + 4 + 8 | 64 + 2 | 216 + 2 + 4 | 6 + 3
    assert sum(int(np.prod(s.shape)) for s in spec.values()) == 431


def test_initial_weights_are_seeded_deterministic_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = initial_weights(TWO, 5)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = initial_weights(TWO, 5)
    c = initial_weights(TWO, 6)
    assert list(a) == list(EXPECTED) and all(a[k].shape == EXPECTED[k] for k in a)
    assert all(a[k].dtype == np.float32 and a[k].flags.c_contiguous for k in a)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["decoders.0.0.conv.weight"], c["decoders.0.0.conv.weight"])
    # conv biases start at zero, the instance norm's affine at (1, 0)
    assert all(not a[k].any() for k in a if k.endswith("bias"))
    np.testing.assert_array_equal(a["encoders.1.0.norm.weight"], np.ones(4, np.float32))


def test_numpy_to_state_round_trip_copies_and_casts() -> None:
    rng = np.random.default_rng(0)
    arrays = {k: rng.normal(size=s) for k, s in EXPECTED.items()}  # float64 in
    state = numpy_to_state(arrays, TWO)
    assert list(state) == list(EXPECTED) and all(t.dtype == torch.float32 for t in state.values())
    arrays["head.bias"][:] = 99.0  # a copy: the caller's array does not alias the tensor
    assert not torch.any(state["head.bias"] == 99.0)
    back = state_to_numpy(state)
    for k, t in state.items():
        np.testing.assert_array_equal(back[k], t.numpy())
        assert back[k].dtype == np.float32
    back["head.weight"][:] = 0.0
    assert torch.any(state["head.weight"] != 0.0)


def test_state_to_numpy_of_a_grad_view_in_float64() -> None:
    t = torch.arange(6, dtype=torch.float64, requires_grad=True).reshape(2, 3).t()  # not contiguous
    out = state_to_numpy({"x": t})["x"]
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (3, 2)
    np.testing.assert_array_equal(out, [[0, 3], [1, 4], [2, 5]])


def test_build_model_loads_the_given_weights() -> None:
    w = initial_weights(TWO, 1)
    model = build_model(TWO, w)
    got = state_to_numpy(model.state_dict())
    assert all(np.array_equal(got[k], w[k]) for k in w)


def test_weights_with_an_extra_tensor_are_refused() -> None:
    w = initial_weights(TWO, 0)
    w["extra.weight"] = np.zeros(1, np.float32)
    with pytest.raises(ConfigError, match=r"missing \[\], unexpected \['extra.weight'\]"):
        numpy_to_state(w, TWO)
    with pytest.raises(ConfigError, match="unexpected"):
        build_model(TWO, w)

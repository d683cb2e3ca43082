"""The 3D U-Net: output shapes, tensor spec from the meta device, seeded initial weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedseg.configs.model import ModelConfig
from fedseg.errors import ConfigError
from fedseg.model.spec import build_model, initial_weights, model_tensor_spec, numpy_to_state, state_to_numpy

TINY = ModelConfig(widths=(4, 8, 16), kernels=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
                   strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)), convs_per_stage=2)


def test_forward_gives_three_region_logits_at_input_size() -> None:
    torch.manual_seed(0)
    model = build_model(TINY)
    assert TINY.divisor == (2, 4, 4)
    x = torch.randn(2, 4, 8, 12, 16)
    y = model(x)
    assert y.shape == (2, 3, 8, 12, 16)
    assert torch.isfinite(y).all()


def test_tensor_spec_matches_the_state_dict_and_has_no_running_stats() -> None:
    spec = model_tensor_spec(TINY)
    state = build_model(TINY).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: s.shape for k, s in spec.items()}
    assert all(s.dtype == "float32" for s in spec.values())
    assert not any("running" in k or "num_batches" in k for k in spec)
    # hand-checked names and shapes: stage-0 first conv is 1x3x3 from 4 inputs, the head maps 4 -> 3
    assert spec["encoders.0.0.conv.weight"].shape == (4, 4, 1, 3, 3)
    assert spec["upsamples.0.weight"].shape == (8, 4, 1, 2, 2)  # transposed conv: (in, out, *stride)
    assert spec["decoders.0.0.conv.weight"].shape == (4, 8, 1, 3, 3)  # skip concat doubles the input
    assert spec["head.weight"].shape == (3, 4, 1, 1, 1)


def test_default_model_spec_is_built_without_allocating() -> None:
    spec = model_tensor_spec(ModelConfig())
    n = sum(int(np.prod(s.shape)) for s in spec.values())
    assert 5_000_000 < n < 7_000_000  # 5 stages 16..256, 2 convs each: about 5.6 M parameters


def test_initial_weights_are_seeded_and_round_trip() -> None:
    a, b, c = initial_weights(TINY, 7), initial_weights(TINY, 7), initial_weights(TINY, 8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["head.weight"], c["head.weight"])
    assert all(v.dtype == np.float32 for v in a.values())
    model = build_model(TINY, a)
    back = state_to_numpy(model.state_dict())
    assert all(np.array_equal(a[k], back[k]) for k in a)


def test_weights_that_do_not_fit_are_rejected() -> None:
    w = initial_weights(TINY, 0)
    w.pop("head.bias")
    with pytest.raises(ConfigError, match="missing"):
        numpy_to_state(w, TINY)
    w = initial_weights(TINY, 0)
    w["head.weight"] = np.zeros((3, 5, 1, 1, 1), np.float32)
    with pytest.raises(ConfigError, match=r"head.weight: expected shape \(3, 4, 1, 1, 1\)"):
        numpy_to_state(w, TINY)

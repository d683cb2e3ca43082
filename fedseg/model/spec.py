"""The tensors a model config implies, and conversions between torch state dicts and NumPy arrays.

The artifact reader checks received weights against :func:`model_tensor_spec` (names, shapes, dtype),
so the spec is computed from the architecture alone: the model is built on the ``meta`` device, which
allocates no memory and runs no initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from fedseg.configs.model import ModelConfig
from fedseg.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from fedseg.tensorspec import TensorSpec

__all__ = ["build_model", "initial_weights", "model_tensor_spec", "numpy_to_state", "state_to_numpy"]


def build_model(config: ModelConfig, weights: Mapping[str, np.ndarray] | None = None) -> torch.nn.Module:
    """Return a :class:`UNet3D` for ``config`` on the CPU, loaded with ``weights`` when given."""
    from fedseg.model.unet import UNet3D

    model = UNet3D(config)
    if weights is not None:
        model.load_state_dict(numpy_to_state(weights, config), strict=True)
    return model


def model_tensor_spec(config: ModelConfig, dtype: str = "float32") -> dict[str, TensorSpec]:
    """Return {tensor name: TensorSpec(shape, dtype)} of every parameter of the model ``config`` describes."""
    import torch

    from fedseg.model.unet import UNet3D
    from fedseg.tensorspec import TensorSpec

    with torch.device("meta"):
        model = UNet3D(config)
    return {name: TensorSpec(tuple(int(d) for d in t.shape), dtype) for name, t in model.state_dict().items()}


def state_to_numpy(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Return float32 C-contiguous NumPy copies of a state dict's tensors."""
    return {name: np.ascontiguousarray(t.detach().to("cpu", copy=True).float().numpy()) for name, t in state.items()}


def numpy_to_state(arrays: Mapping[str, np.ndarray], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Return float32 tensors for ``arrays`` after checking their names and shapes against ``config``.

    Raises ConfigError naming the first missing, unexpected or misshapen tensor.
    """
    import torch

    spec = model_tensor_spec(config)
    missing = sorted(set(spec) - set(arrays))
    extra = sorted(set(arrays) - set(spec))
    if missing or extra:
        raise ConfigError(f"weights do not fit the model config: missing {missing[:3]}, unexpected {extra[:3]}")
    out = {}
    for name, s in spec.items():
        arr = np.asarray(arrays[name])
        if tuple(arr.shape) != tuple(s.shape):
            raise ConfigError(f"tensor {name}: expected shape {tuple(s.shape)}, got {tuple(arr.shape)}")
        out[name] = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
    return out


def initial_weights(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Return reproducible initial weights: the same ``config`` and ``seed`` give the same arrays on every CPU."""
    import torch

    from fedseg.model.unet import UNet3D

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet3D(config)
    return state_to_numpy(model.state_dict())

"""What a network needs of its inputs: how they are preprocessed, how many channels, which window.

Taken from the federation plan by the caller (:func:`fedseg.workflow.model_io.inference_spec`), so
``inference`` never imports ``federation``: it works on the settings it is handed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedseg.configs.preprocess import PreprocessConfig

__all__ = ["InferenceSpec"]


@dataclass(frozen=True)
class InferenceSpec:
    """The preprocessing that makes the network's input (modalities, spacing...), its input channel count,
    and the sliding-window size (the training patch)."""

    preprocessing: PreprocessConfig
    in_channels: int
    patch_size: tuple[int, int, int]

"""The 3D U-Net architecture settings (the plan's ``[model]`` table)."""

from __future__ import annotations

from dataclasses import dataclass

from fedseg.configtools import require
from fedseg.labels import REGIONS

__all__ = ["ModelConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """A 3D U-Net: one encoder stage per entry of ``widths``.

    ``strides[i]`` is the downsampling stride entering stage ``i`` (the first is 1 in every axis), so a
    patch must be divisible by the product of the strides along each axis. ``kernels[i]`` is the
    convolution kernel of stage ``i`` (3 or 1 per axis; 1 in an axis keeps anisotropic data cheap).
    The defaults (5 stages, 16→256 channels) train on a GPU for real BraTS data; the demo plan uses
    fewer, narrower stages so it trains on a laptop CPU.
    """

    in_channels: int = 4
    out_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    kernels: tuple[tuple[int, int, int], ...] = ((3, 3, 3),) * 5
    strides: tuple[tuple[int, int, int], ...] = ((1, 1, 1),) + ((2, 2, 2),) * 4
    convs_per_stage: int = 2
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        where = "model"
        require(self.in_channels >= 1, where, f"in_channels must be >= 1, got {self.in_channels}")
        require(self.out_channels == len(REGIONS), where, f"out_channels must be {len(REGIONS)} (WT, TC, ET)")
        require(2 <= len(self.widths) <= 7, where, f"widths must list 2 to 7 stages, got {len(self.widths)}")
        require(all(1 <= w <= 1024 for w in self.widths), where, f"widths must lie in 1..1024, got {self.widths}")
        require(len(self.kernels) == len(self.widths), where, "kernels must have one entry per stage (widths)")
        require(len(self.strides) == len(self.widths), where, "strides must have one entry per stage (widths)")
        require(all(k in (1, 3) for kk in self.kernels for k in kk), where, "kernel sizes must be 1 or 3")
        require(all(s in (1, 2) for ss in self.strides for s in ss), where, "strides must be 1 or 2")
        require(self.strides[0] == (1, 1, 1), where, "the first stage's stride must be (1, 1, 1)")
        require(1 <= self.convs_per_stage <= 4, where, "convs_per_stage must lie in 1..4")
        require(0.0 <= self.negative_slope < 1.0, where, "negative_slope must lie in [0, 1)")

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Return the factor each patch axis (z, y, x) must be divisible by."""
        out = [1, 1, 1]
        for stride in self.strides:
            out = [o * s for o, s in zip(out, stride)]
        return (out[0], out[1], out[2])

"""The 3D U-Net with instance normalization and region outputs (WT, TC, ET).

Architecture after Çiçek et al. (MICCAI 2016, "3D U-Net") in the nnU-Net variant of Isensee et al.
(Nature Methods 2021): every stage is ``convs_per_stage`` x [Conv3d → InstanceNorm3d(affine) →
LeakyReLU]; the first convolution of encoder stage ``i > 0`` is strided by ``strides[i]`` (no pooling);
the decoder upsamples with a transposed convolution of kernel = stride, concatenates the skip
connection and convolves back to the stage width; a 1x1x1 head gives one logit per region. Instance
normalization keeps no running statistics, so there is nothing but weights for federated averaging.

Parameter names are stable (``encoders.{i}.{j}.conv.weight``, ``upsamples.{i}.weight``,
``decoders.{i}.{j}.norm.bias``, ``head.weight``...) because they are the tensor names of signed artifacts.
"""

from __future__ import annotations

import torch
from torch import nn

from fedseg.configs.model import ModelConfig

__all__ = ["ConvBlock", "UNet3D"]


class ConvBlock(nn.Module):
    """Conv3d → InstanceNorm3d(affine=True) → LeakyReLU."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int],
                 negative_slope: float) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
        self.norm = nn.InstanceNorm3d(cout, affine=True, eps=1e-5)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def _stage(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], n: int,
           slope: float) -> nn.Sequential:
    blocks = [ConvBlock(cin, cout, kernel, stride, slope)]
    blocks += [ConvBlock(cout, cout, kernel, (1, 1, 1), slope) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


class UNet3D(nn.Module):
    """A 3D U-Net built from a :class:`ModelConfig`; ``forward`` returns logits [B, 3, Z, Y, X].

    The input spatial size must be divisible by ``config.divisor`` along each axis (sliding-window
    inference and training patches guarantee it).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w, k, s, n, slope = config.widths, config.kernels, config.strides, config.convs_per_stage, config.negative_slope
        self.encoders = nn.ModuleList(
            _stage(config.in_channels if i == 0 else w[i - 1], w[i], k[i], s[i], n, slope) for i in range(len(w))
        )
        # upsamples[i] / decoders[i] bring stage i+1 back to stage i's resolution and width
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose3d(w[i + 1], w[i], kernel_size=s[i + 1], stride=s[i + 1], bias=True)
            for i in range(len(w) - 1)
        )
        self.decoders = nn.ModuleList(_stage(2 * w[i], w[i], k[i], (1, 1, 1), n, slope) for i in range(len(w) - 1))
        self.head = nn.Conv3d(w[0], config.out_channels, kernel_size=1, bias=True)
        # On the meta device (tensor specs) there is nothing to initialize, and torch's meta-device
        # kaiming_normal_ would import torch._dynamo (2-3 s) for nothing.
        if next(self.parameters()).device.type != "meta":
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise convolutions with He normal (a = LeakyReLU slope), biases zero, norms identity."""
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(module.weight, a=self.config.negative_slope)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.InstanceNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.decoders))):
            x = self.upsamples[i](x)
            x = self.decoders[i](torch.cat((x, skips[i]), dim=1))
        return self.head(x)

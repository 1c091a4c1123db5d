"""The pix2pix-style U-Net generator: the `pairwise-unet` baseline (one model per direction).

Isola et al. 2017's generator: 4x4 stride-2 convolutions down (LeakyReLU 0.2), 4x4 stride-2
transposed convolutions up (ReLU, optional dropout in the deepest decoder blocks), skip connections
that concatenate each encoder level with its decoder. Differences, and why: GroupNorm instead of
BatchNorm (results must not depend on batch size or batch composition); the output is linear
instead of tanh, because this is an L1 regression in model space, where robust-percentile
normalisation leaves real values beyond [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int
    out_channels: int
    base_channels: int = 64
    depth: int = 5  # number of stride-2 levels: chip sides must be multiples of 2**depth
    max_channels: int = 512
    dropout: float = 0.0  # pix2pix uses 0.5 in the three deepest decoder blocks

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("UNetConfig needs at least one input and one output channel")
        if self.depth < 1 or self.base_channels < 1 or self.max_channels < self.base_channels:
            raise ValueError(f"inconsistent UNetConfig sizes: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def widths(self) -> list[int]:
        return [min(self.base_channels * 2**i, self.max_channels) for i in range(self.depth)]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths()
        self.down = nn.ModuleList()
        prev = config.in_channels
        for level, width in enumerate(widths):
            outermost, innermost = level == 0, level == config.depth - 1
            layers: list[nn.Module] = []
            if not outermost:
                layers.append(nn.LeakyReLU(0.2))
            layers.append(nn.Conv2d(prev, width, 4, stride=2, padding=1, bias=outermost or innermost))
            if not (outermost or innermost):  # no norm at the 1x1-ish bottleneck, as pix2pix
                layers.append(_norm(width))
            self.down.append(nn.Sequential(*layers))
            prev = width
        self.up = nn.ModuleList()
        for level in reversed(range(config.depth)):
            innermost = level == config.depth - 1
            in_ch = widths[level] if innermost else 2 * widths[level]  # skip concatenated
            if level == 0:
                self.up.append(nn.Sequential(
                    nn.ReLU(), nn.ConvTranspose2d(in_ch, config.out_channels, 4, stride=2, padding=1)))
                continue
            out_ch = widths[level - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
                      _norm(out_ch)]
            if config.dropout > 0 and level >= config.depth - 3:
                layers.append(nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.config.depth
        if x.shape[-1] % multiple or x.shape[-2] % multiple:
            raise ValueError(f"U-Net of depth {self.config.depth} needs sides that are multiples "
                             f"of {multiple}, got {tuple(x.shape[-2:])}")
        skips = []
        h = x  # (B, C_in, H, W)
        for block in self.down:
            h = block(h)  # (B, w_l, H / 2^(l+1), W / 2^(l+1))
            skips.append(h)
        skips.pop()  # the bottleneck feeds the first decoder directly
        for block in self.up:
            h = block(h)  # doubles the side
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)  # (B, 2 w_l, ...)
        return h  # (B, C_out, H, W)

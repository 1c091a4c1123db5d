"""Building blocks shared by the scene encoder and the routed generator (DiT `models.py` style).

One transformer block serves both: its AdaLN modulation is given per token, so the scene encoder
passes a per-slot modulation repeated over the slot's tokens (partition AdaLN) and the generator
passes a per-token one (token-wise AdaLN from scene tokens). Its FFN has one branch, or one branch
per modality with the route chosen per sample (the modality-routed FFN, MetaEarth-MM eq. 18).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def sinusoid(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) -> (B, dim) sin/cos features, GLIDE/DiT style."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    args = values.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ScalarEmbedder(nn.Module):
    """A scalar per sample (flow time, log GSD) -> hidden vector through sin/cos features and an MLP."""

    def __init__(self, hidden: int, multiplier: float, freq_dim: int = 256) -> None:
        super().__init__()
        self.multiplier = multiplier  # spreads the scalar's useful range over the sinusoid periods
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        feats = sinusoid(values * self.multiplier, self.freq_dim)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


def pos_embed_2d(dim: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(h*w, dim) fixed 2-D sin-cos positions (MAE/DiT), computed for any grid so tiles of any size work."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    parts = []
    for grid in (ys, xs):
        out = grid.reshape(-1)[:, None] * omega[None]
        parts += [torch.sin(out), torch.cos(out)]
    return torch.cat(parts, dim=1)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, d/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def mlp(hidden: int, ratio: float) -> nn.Sequential:
    inner = int(hidden * ratio)
    return nn.Sequential(nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden))


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-Zero; `mod` is (B, L|1, 6*hidden) from the caller."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, branches: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ffn = nn.ModuleList(mlp(hidden, mlp_ratio) for _ in range(branches))

    def _ffn(self, x: torch.Tensor, routes: Sequence[int] | None) -> torch.Tensor:
        if len(self.ffn) == 1:
            return self.ffn[0](x)
        if routes is None or len(routes) != x.shape[0]:
            raise ValueError("a routed FFN needs one route per sample")
        out = torch.empty_like(x)
        for r in sorted(set(routes)):  # all tokens of a sample go to its modality's branch
            idx = [i for i, ri in enumerate(routes) if ri == r]
            out[idx] = self.ffn[r](x[idx])
        return out

    def forward(self, x: torch.Tensor, mod: torch.Tensor, routes: Sequence[int] | None = None) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
        x = x + g1 * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2 * self._ffn(modulate(self.norm2(x), sh2, sc2), routes)


class FinalLayer(nn.Module):
    """AdaLN (token-wise) + linear to patch pixels; zero-initialised so training starts from 0 output."""

    def __init__(self, hidden: int, patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        for p in (self.linear.weight, self.linear.bias, self.ada[1].weight, self.ada[1].bias):
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


def patchify_embed(conv: nn.Conv2d, z: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, N, D) with a stride-p convolution."""
    return conv(z).flatten(2).transpose(1, 2)


def unpatchify(x: torch.Tensor, channels: int, patch: int, h: int, w: int) -> torch.Tensor:
    """(B, N, p*p*C) -> (B, C, h*p, w*p)."""
    b = x.shape[0]
    x = x.reshape(b, h, w, patch, patch, channels)
    return torch.einsum("bhwpqc->bchpwq", x).reshape(b, channels, h * patch, w * patch)

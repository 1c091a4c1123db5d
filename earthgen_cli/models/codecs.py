"""Per-modality latent codecs: image in model space (B, C, H, W) <-> latent (B, C', H/f, W/f).

`pixel` is space-to-depth (no parameters, exact inverse). `kl` is a small diffusers AutoencoderKL
with the modality's band count, trained by the codec stage and then frozen (Any2Any stage 1). Each
codec owns its latent shift/scale, measured on the training data after the codec is trained, so that
latents are roughly unit-variance for the flow model; the values travel in config.json.
"""

from __future__ import annotations

import abc

import torch
import torch.nn as nn
import torch.nn.functional as F

from earthgen_cli.models.config import CodecConfig, CodecKind


class Codec(nn.Module, abc.ABC):
    """Common part: the latent normalisation (z - shift) * scale, per latent channel."""

    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        # Not persistent: the values live in config.json (`latent_stats`), set by `set_latent_stats`.
        self.register_buffer("shift", torch.zeros(latent_channels), persistent=False)
        self.register_buffer("scale", torch.ones(latent_channels), persistent=False)

    def set_latent_stats(self, shift: list[float], scale: list[float]) -> None:
        if len(shift) != self.latent_channels or len(scale) != self.latent_channels:
            raise ValueError(f"latent stats need {self.latent_channels} values per list")
        self.shift.copy_(torch.tensor(shift))
        self.scale.copy_(torch.tensor(scale))

    def latent_stats(self) -> dict[str, list[float]]:
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    def _norm(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.shift[:, None, None]) * self.scale[:, None, None]

    def _denorm(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.scale[:, None, None] + self.shift[:, None, None]

    @abc.abstractmethod
    def raw_encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Image (B, C, H, W) in model space -> latent before the shift/scale normalisation."""

    @abc.abstractmethod
    def raw_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent before normalisation -> image in model space."""

    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._norm(self.raw_encode(x, sample, generator))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.raw_decode(self._denorm(z))


class PixelCodec(Codec):
    def __init__(self, bands: int, factor: int) -> None:
        super().__init__(bands * factor * factor)
        self.factor = factor

    def raw_encode(self, x, sample=False, generator=None):
        return F.pixel_unshuffle(x, self.factor)  # (B, C, H, W) -> (B, C f^2, H/f, W/f)

    def raw_decode(self, z):
        return F.pixel_shuffle(z, self.factor)


class KLCodec(Codec):
    def __init__(self, bands: int, cfg: CodecConfig) -> None:
        super().__init__(cfg.latent_channels)
        from diffusers import AutoencoderKL  # noqa: PLC0415  (slow import, only when a kl codec is built)

        n = len(cfg.widths)
        self.vae = AutoencoderKL(
            in_channels=bands, out_channels=bands, latent_channels=cfg.latent_channels,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(cfg.widths), layers_per_block=cfg.layers_per_block,
            norm_num_groups=min(32, cfg.widths[0]), sample_size=64,
        )

    def posterior(self, x: torch.Tensor):
        return self.vae.encode(x).latent_dist

    def raw_encode(self, x, sample=False, generator=None):
        dist = self.posterior(x)
        if not sample:
            return dist.mean
        return dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator).to(dist.mean)

    def raw_decode(self, z):
        return self.vae.decode(z).sample


def build_codec(bands: int, cfg: CodecConfig) -> Codec:
    return PixelCodec(bands, cfg.factor) if cfg.kind is CodecKind.pixel else KLCodec(bands, cfg)

"""Baselines that need no unified model, so that every number in a report has a neighbour.

All baselines map a model-space source batch (B, C_src, H, W) to a model-space target batch
(B, C_tgt, H, W), exactly like the unified model, and are de-normalised and scored by the same
code. Fitting takes the training split as an iterable of batches and never sees test chips.

- `mean`: a constant at the training split's per-band mean of the target in raw units (the best
  input-independent predictor in L2 over the training distribution; not the best in mean PSNR,
  which averages logs per chip: see docs/evaluation.md).
- `oracle-mean` (`oracle_mean`): each reference chip's own per-band mean, the floor for a model
  that uses its input (a control, always scored; it reads the target).
- `luminance`: the analytic rgb -> pan map (BT.601 luma of the raw RGB bands).
- `pixel-regression`: a per-pixel polynomial of the source bands, least squares on the training
  split: band maths, the strong baseline between optical modalities.
- `pairwise-unet`: the pix2pix-style U-Net (models/unet.py) trained with an L1 loss per direction.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.epochs import cycle_batches
from earthgen_cli.modalities import luminance
from earthgen_cli.modalities import BandScaling
from earthgen_cli.models.unet import UNet, UNetConfig
from earthgen_cli.seeds import seeded_init

# (source, target, valid) with valid (B, H, W) bool or None (all valid); model space
TrainingBatch = tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]


class Baseline(Protocol):
    name: str

    def predict(self, source: torch.Tensor) -> torch.Tensor:
        """(B, C_src, H, W) model space -> (B, C_tgt, H, W) model space."""


def _valid_or_all(valid: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if valid is None:
        return torch.ones(like.shape[0], *like.shape[-2:], dtype=torch.bool, device=like.device)
    return valid.to(torch.bool)


def _raw_band_sums(target: torch.Tensor, valid: torch.Tensor | None, scaling: BandScaling):
    """(sum, count) per band of the valid raw target pixels, float64 (B, C) each."""
    raw = scaling.from_model(target.to(torch.float64))
    mask = _valid_or_all(valid, target)[:, None].to(torch.float64)  # (B, 1, H, W)
    return (raw * mask).sum(dim=(2, 3)), mask.sum(dim=(2, 3)).expand(-1, raw.shape[1])


def _constant(raw: torch.Tensor, scaling: BandScaling, shape) -> torch.Tensor:
    """(B, C) raw per-band values -> (B, C, H, W) model space, float64 (no float32 round-off)."""
    return scaling.to_model(raw.to(torch.float64)[..., None, None].expand(*raw.shape, *shape).clone())


@dataclass(frozen=True)
class TrainMean:
    """`mean`: a constant image at the training split's per-band mean of the target, taken in raw
    units over valid pixels (in model space the mean would be another number wherever the
    normalisation is not linear in raw units)."""

    raw: torch.Tensor  # (C,) float64, raw units
    scaling: BandScaling
    name: str = "mean"

    @classmethod
    def fit(cls, batches: Iterable[TrainingBatch], scaling: BandScaling) -> "TrainMean":
        total = count = None
        for _, target, valid in batches:
            part, n = _raw_band_sums(target, valid, scaling)
            total = part.sum(0) if total is None else total + part.sum(0)
            count = n.sum(0) if count is None else count + n.sum(0)
        if total is None or count is None or bool((count == 0).any()):
            raise EarthgenError("mean baseline: the training split has no valid target pixels")
        return cls(total / count, scaling)

    def predict(self, source: torch.Tensor) -> torch.Tensor:
        return _constant(self.raw.expand(source.shape[0], -1), self.scaling, source.shape[-2:])


def oracle_mean(target: torch.Tensor, valid: torch.Tensor | None, scaling: BandScaling) -> torch.Tensor:
    """`oracle-mean`: each reference chip's own per-band mean (raw units, valid pixels) as a
    constant image, model space. It looks at the answer, yet carries no spatial detail: the floor
    a model that uses its input must beat."""
    total, count = _raw_band_sums(target, valid, scaling)
    return _constant(total / count.clamp_min(1.0), scaling, target.shape[-2:])


@dataclass(frozen=True)
class Luminance:
    """rgb -> pan through `modalities.luminance` on raw values."""

    rgb: BandScaling
    pan: BandScaling
    name: str = "luminance"

    def predict(self, source: torch.Tensor) -> torch.Tensor:
        if source.shape[1] != 3 or self.rgb.bands != 3 or self.pan.bands != 1:
            raise EarthgenError(f"luminance maps 3-band rgb to 1-band pan, got {source.shape[1]} bands")
        raw = self.rgb.from_model(source.to(torch.float64)).cpu().numpy()
        pan = torch.from_numpy(np.ascontiguousarray(luminance(raw))).to(source.device)
        return self.pan.to_model(pan).to(torch.float32)


def polynomial_terms(bands: int, degree: int) -> tuple[tuple[int, ...], ...]:
    """Every monomial of the bands up to `degree` as a tuple of band indices; () is the constant."""
    return tuple(t for d in range(degree + 1)
                 for t in itertools.combinations_with_replacement(range(bands), d))


def _design(source: torch.Tensor, terms: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, P) float64 monomials."""
    x = source.to(torch.float64).movedim(1, -1).reshape(-1, source.shape[1])  # (N, C)
    cols = [x[:, list(t)].prod(dim=1) if t else torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
            for t in terms]
    return torch.stack(cols, dim=1)


@dataclass(frozen=True)
class PixelRegression:
    degree: int
    terms: tuple[tuple[int, ...], ...]
    coef: torch.Tensor  # (P, C_tgt) float64
    name: str = "pixel-regression"

    @classmethod
    def fit(cls, batches: Iterable[TrainingBatch], degree: int = 2, ridge: float = 1e-6) -> "PixelRegression":
        """Least squares over every valid training pixel, streamed through the normal equations
        (X'X and X'y in float64), with a ridge relative to X'X's mean diagonal for rank safety."""
        if degree < 1:
            raise ValueError(f"degree must be at least 1, got {degree}")
        xtx = xty = None
        terms: tuple[tuple[int, ...], ...] = ()
        for source, target, valid in batches:
            if not terms:
                terms = polynomial_terms(source.shape[1], degree)
            mask = _valid_or_all(valid, source).reshape(-1)
            x = _design(source, terms)[mask]
            y = target.to(torch.float64).movedim(1, -1).reshape(-1, target.shape[1])[mask]
            xtx = x.T @ x if xtx is None else xtx + x.T @ x
            xty = x.T @ y if xty is None else xty + x.T @ y
        if xtx is None or xty is None or xtx[0, 0] == 0:
            raise EarthgenError("pixel-regression: the training split has no valid pixels")
        reg = ridge * torch.diagonal(xtx).mean() * torch.eye(xtx.shape[0], dtype=torch.float64)
        reg[0, 0] = 0.0  # never shrink the intercept
        coef = torch.linalg.solve(xtx + reg, xty)
        return cls(degree, terms, coef)

    def predict(self, source: torch.Tensor) -> torch.Tensor:
        n_bands = max((max(t) for t in self.terms if t), default=-1) + 1
        if source.shape[1] != n_bands:
            raise EarthgenError(f"pixel-regression was fitted on {n_bands} source bands, "
                                f"got {source.shape[1]}")
        b, _, h, w = source.shape
        y = _design(source, self.terms) @ self.coef.to(source.device)  # (N, C_tgt)
        return y.reshape(b, h, w, -1).movedim(-1, 1).to(torch.float32)


@dataclass(frozen=True)
class PairwiseUNet:
    """A trained U-Net; `scaling` (source, target) is the normalisation of the data it was trained
    on (None: the same as the data it is applied to). `predict` maps model space of the data given
    in `data_scaling` through raw units into the U-Net's own, so a U-Net trained on one build of a
    dataset scores chips of another build with other percentiles correctly."""

    model: UNet
    source: str = ""
    target: str = ""
    scaling: Optional[tuple[BandScaling, BandScaling]] = None
    name: str = "pairwise-unet"

    @torch.no_grad()
    def predict(self, source: torch.Tensor,
                data_scaling: Optional[tuple[BandScaling, BandScaling]] = None) -> torch.Tensor:
        remap = self.scaling is not None and data_scaling is not None
        if remap:
            source = self.scaling[0].to_model(data_scaling[0].from_model(source))
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model(source)
        finally:
            self.model.train(was_training)
        return data_scaling[1].to_model(self.scaling[1].from_model(out)) if remap else out


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean absolute error over valid pixels (all bands); nodata never teaches the model."""
    if valid is None:
        return F.l1_loss(pred, target)
    mask = valid.to(pred.dtype)[:, None].expand_as(pred)
    return ((pred - target).abs() * mask).sum() / mask.sum().clamp_min(1.0)


def unet_l1_step(model: UNet, optimizer: torch.optim.Optimizer, source: torch.Tensor,
                 target: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """One pix2pix-style regression step (L1 only, no discriminator); returns the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = masked_l1(model(source), target, valid)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def unet_depth_for(side: int, max_depth: int = 5) -> int:
    """The deepest U-Net (at most `max_depth`) whose bottleneck is still at least 2x2 for chips of
    `side` pixels; sides must halve exactly at every level."""
    depth = 0
    while depth < max_depth and side % 2 ** (depth + 1) == 0 and side // 2 ** (depth + 1) >= 2:
        depth += 1
    if depth == 0:
        raise EarthgenError(f"pairwise-unet needs even chip sides of at least 4 pixels, got {side}")
    return depth


def train_pairwise_unet(batches: Callable[[], Iterable[TrainingBatch]], config: UNetConfig,
                        steps: int, lr: float = 2e-4, seed: int = 0,
                        losses: Optional[list[float]] = None) -> UNet:
    """`steps` L1 steps over the training split, epoch after epoch (pix2pix's Adam settings);
    `batches()` starts one pass. The seed fixes the initial weights without touching global RNG.
    Each step's loss is appended to `losses` when given."""
    with seeded_init(seed):
        model = UNet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    for source, target, valid in cycle_batches(batches, steps, "pairwise-unet"):
        loss = unet_l1_step(model, optimizer, source, target, valid)
        if losses is not None:
            losses.append(loss)
    return model.eval()


UNET_FORMAT = "earthgen-pairwise-unet"


def save_unet(model: UNet, path: Path, source: str, target: str, extra: dict | None = None) -> Path:
    """config.json (format, direction, UNetConfig, the training data's scaling in `extra`) +
    model.safetensors, published atomically like every earthgen model directory."""
    from earthgen_cli.checkpoint import write_model_dir

    meta = {"format": UNET_FORMAT, "source": source, "target": target,
            "config": dataclasses.asdict(model.config), **(extra or {})}
    return write_model_dir(Path(path), meta, {"model": model})


def load_unet(path: Path) -> PairwiseUNet:
    """A `earthgen train` stage-unet directory -> PairwiseUNet; one-line errors for bad input."""
    from safetensors.torch import load_file

    from earthgen_cli.checkpoint import read_model_dir

    path = Path(path)
    meta = read_model_dir(path, UNET_FORMAT, "pairwise-unet")
    try:
        model = UNet(UNetConfig(**meta["config"]))
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        scaling = {m: BandScaling.from_json(v) for m, v in meta["scaling"].items()}
        source, target = str(meta["source"]), str(meta["target"])
        scales = (scaling[source], scaling[target])
    except (OSError, TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise EarthgenError(f"{path}: broken pairwise-unet ({str(exc).splitlines()[0]})") from None
    return PairwiseUNet(model.eval(), source=source, target=target, scaling=scales)

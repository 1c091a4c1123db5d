"""Per-image fidelity metrics in the papers' conventions, plus the two that say whether an output
follows its input.

Most metrics compare a prediction with its target on the *unit scale*: each band's raw values
(de-normalised model output, the units in the files) mapped to [0, 1] through the dataset's
per-band range (robust low/high percentiles) and clipped, which is exactly what an 8-bit render of
the band shows. The papers evaluate 8-bit images, so this is the scale their numbers live on:
`psnr_dataset` and SSIM use data range 1, RMSE is reported on 0-255 (Any2Any), SCC is scale free
(C-DiffSET, Zhou et al. 1998) and FSIM works on 0-255 internally (Zhang et al. 2011).

Two metrics work on raw units, unclipped (`raw_scores`), per chip and band over valid pixels, then
averaged: `psnr`, the primary PSNR, with the data range stated as the *reference chip's own*
0.5-99.5 percentile range (the dataset range makes an output that ignores its input look good:
every chip sits somewhere inside it), and `corr`, the Pearson correlation between output and
reference (0 where either is constant). Both are unchanged by any per-band linear rescaling.

All functions take (B, C, H, W) tensors and return one value per image, shape (B,), so callers
can average over any number of batches. See docs/evaluation.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    spatial_correlation_coefficient,
    structural_similarity_index_measure,
)

from earthgen_cli.evaluate.fsim import fsim
from earthgen_cli.modalities import BandScaling


def to_unit(raw: torch.Tensor, scaling: BandScaling) -> torch.Tensor:
    """Raw values (..., C, H, W) -> [0, 1] per band (low -> 0, high -> 1), clipped, float32."""
    if raw.shape[-3] != scaling.bands:
        raise ValueError(f"scaling has {scaling.bands} bands, image has {raw.shape[-3]}")
    low, high = scaling.raw_range()  # linear in raw units, also for log-scaled modalities
    lo = raw.new_tensor(low, dtype=torch.float32).reshape(-1, 1, 1)
    hi = raw.new_tensor(high, dtype=torch.float32).reshape(-1, 1, 1)
    return ((raw.to(torch.float32) - lo) / (hi - lo)).clamp_(0.0, 1.0)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image with data range 1 (the dataset range, on the unit
    scale): report column `PSNR (dataset range)`; identical images give inf."""
    _check_pair(pred, target)
    return peak_signal_noise_ratio(pred.double(), target.double(), data_range=1.0,
                                   reduction="none", dim=(1, 2, 3)).float()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per image (Wang et al. 2004: Gaussian window 11, sigma 1.5), mean over bands."""
    _check_pair(pred, target)
    return structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")


def rmse_255(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error per image on the 0-255 scale (Any2Any's convention)."""
    _check_pair(pred, target)
    diff = (pred.double() - target.double()) * 255.0
    return diff.square().mean(dim=(1, 2, 3)).sqrt().float()


def scc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spatial correlation coefficient per image: correlation of Laplacian high-pass details in
    8x8 windows (Zhou et al. 1998, as C-DiffSET reports it), mean over bands and pixels."""
    _check_pair(pred, target)
    return spatial_correlation_coefficient(pred, target, reduction="none")


PERCENTILES = (0.005, 0.995)  # the reference chip's own data range for the primary PSNR
RANGE_FLOOR = 1e-3  # ... floored at this share of the dataset range: a flat chip gives no inf


def range_floor(scaling: BandScaling) -> torch.Tensor:
    """`psnr_ref`'s floor for a modality, per band in raw units: RANGE_FLOOR of the dataset range
    (what model space's -1..1 maps to)."""
    ends = scaling.from_model(torch.tensor([-1.0, 1.0], dtype=torch.float64).reshape(2, 1, 1, 1)
                              .expand(2, scaling.bands, 1, 1))
    return RANGE_FLOOR * (ends[1] - ends[0]).abs().flatten()
FLAT = 1e-9  # a band whose std is below this share of its largest value is constant for `corr`


def _per_band(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H*W) float64, invalid pixels NaN."""
    x = x.to(torch.float64).flatten(2).clone()
    if valid is not None:
        x[~valid.to(torch.bool).flatten(1)[:, None].expand_as(x)] = math.nan
    return x


def psnr_ref(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
             floor: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Primary PSNR in dB per image: per band 10 log10(r^2 / MSE) with r the reference band's own
    0.5-99.5 percentile range (at least `floor`, per band or one value), over valid pixels
    (`valid` (B, H, W)), then the mean over bands. Raw units, unclipped, float64; a perfect band
    gives inf."""
    _check_pair(pred, target)
    p, t = _per_band(pred, valid), _per_band(target, valid)
    lo, hi = torch.nanquantile(t, torch.tensor(PERCENTILES, dtype=torch.float64), dim=2)
    floor = torch.as_tensor(floor, dtype=torch.float64).reshape(-1)  # () or (C,)
    data_range = torch.maximum(hi - lo, floor)
    mse = (p - t).square().nanmean(dim=2)
    return (10.0 * torch.log10(data_range.square() / mse)).mean(dim=1)


def corr(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Pearson correlation per image: per band over valid pixels, then the mean over bands. A
    constant band (output or reference) correlates with nothing: 0, not NaN. float64."""
    _check_pair(pred, target)
    p, t = _per_band(pred, valid), _per_band(target, valid)
    size = torch.maximum(p.abs().nan_to_num(0.0).amax(dim=2), t.abs().nan_to_num(0.0).amax(dim=2))
    p, t = p - p.nanmean(dim=2, keepdim=True), t - t.nanmean(dim=2, keepdim=True)
    sd_p, sd_t = p.square().nanmean(dim=2).sqrt(), t.square().nanmean(dim=2).sqrt()
    # constant up to float round-off (a constant through a non-linear de-normalisation varies by ulps)
    varies = (sd_p > FLAT * size) & (sd_t > FLAT * size)
    r = torch.where(varies, (p * t).nanmean(dim=2) / torch.where(varies, sd_p * sd_t, 1.0), 0.0)
    return r.clamp(-1.0, 1.0).mean(dim=1)


def raw_scores(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
               floor: torch.Tensor | float = 0.0) -> dict[str, torch.Tensor]:
    """{"psnr", "corr"}: (B,) per image, on raw-unit `pred` and `target`."""
    return {"psnr": psnr_ref(pred, target, valid, floor), "corr": corr(pred, target, valid)}


@dataclass(frozen=True)
class MetricInfo:
    name: str  # key in report.json
    label: str  # column header, as the papers write it
    higher_is_better: bool
    decimals: int  # digits in report.md


# Every metric a report can hold, pixel-level and set-level (FID/KID over a set, CAS eq. 20).
# `psnr` (reference chip's own range) and `corr` come from raw_scores, the rest from pixel_scores.
METRIC_INFO: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("psnr", "PSNR (ref range)", True, 2),
        MetricInfo("psnr_dataset", "PSNR (dataset range)", True, 2),
        MetricInfo("corr", "corr", True, 3),
        MetricInfo("ssim", "SSIM", True, 4),
        MetricInfo("rmse", "RMSE", False, 2),
        MetricInfo("scc", "SCC", True, 4),
        MetricInfo("fsim", "FSIM", True, 4),
        MetricInfo("fid", "FID", False, 2),
        MetricInfo("kid", "KID", False, 4),
        MetricInfo("cas", "CAS", True, 2),
    )
}

PIXEL_METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "psnr_dataset": psnr, "ssim": ssim, "rmse": rmse_255, "scc": scc, "fsim": fsim,
}


def pixel_scores(pred: torch.Tensor, target: torch.Tensor,
                 names: tuple[str, ...] = tuple(PIXEL_METRICS)) -> dict[str, torch.Tensor]:
    """{metric: (B,) per-image values} for unit-scale `pred` and `target` (clipped [0, 1])."""
    return {name: PIXEL_METRICS[name](pred, target) for name in names}

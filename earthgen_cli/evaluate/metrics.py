"""Per-image fidelity metrics in the papers' conventions.

Every metric here compares a prediction with its target on the *unit scale*: each band's raw
values (de-normalised model output, the units in the files) mapped to [0, 1] through the dataset's
per-band scaling (robust low/high percentiles) and clipped, which is exactly what an 8-bit render of
the band shows. The papers evaluate 8-bit images, so this is the scale their numbers live on:
PSNR and SSIM use data range 1, RMSE is reported on 0-255 (Any2Any), SCC is scale free
(C-DiffSET, Zhou et al. 1998) and FSIM works on 0-255 internally (Zhang et al. 2011).

All functions take (B, C, H, W) tensors and return one value per image, shape (B,), so callers
can average over any number of batches.
"""

from __future__ import annotations

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
    model = scaling.to_model(raw.to(torch.float32))
    return ((model + 1.0) * 0.5).clamp_(0.0, 1.0)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (data range 1); identical images give inf."""
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


@dataclass(frozen=True)
class MetricInfo:
    name: str  # key in report.json
    label: str  # column header, as the papers write it
    higher_is_better: bool
    decimals: int  # digits in report.md


# Every metric a report can hold, pixel-level and set-level (FID/KID over a set, CAS eq. 20).
METRIC_INFO: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("psnr", "PSNR", True, 2),
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
    "psnr": psnr, "ssim": ssim, "rmse": rmse_255, "scc": scc, "fsim": fsim,
}


def pixel_scores(pred: torch.Tensor, target: torch.Tensor,
                 names: tuple[str, ...] = tuple(PIXEL_METRICS)) -> dict[str, torch.Tensor]:
    """{metric: (B,) per-image values} for unit-scale `pred` and `target`."""
    return {name: PIXEL_METRICS[name](pred, target) for name in names}

"""Pixel metrics: exact values on identical images, the analytic PSNR of Gaussian noise, the unit
scale convention, and FSIM / phase congruency properties from Zhang et al. 2011 and Kovesi."""

from __future__ import annotations

import math

import pytest
import torch

from earthgen_cli.evaluate.fsim import fsim, gradient_magnitude, phase_congruency
from earthgen_cli.evaluate.metrics import (
    METRIC_INFO,
    PIXEL_METRICS,
    corr,
    pixel_scores,
    psnr,
    psnr_ref,
    raw_scores,
    rmse_255,
    scc,
    ssim,
    to_unit,
)
from earthgen_cli.modalities import BandScaling


def _texture(shape, seed=0, low=0.3, high=0.7):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(shape, generator=g)


def test_identical_images_give_the_ideal_values():
    x = _texture((3, 3, 48, 48))
    scores = pixel_scores(x, x.clone())
    assert torch.isinf(scores["psnr_dataset"]).all() and (scores["psnr_dataset"] > 0).all()
    raw = raw_scores(x * 3000, x.clone() * 3000)
    assert torch.isinf(raw["psnr"]).all() and (raw["psnr"] > 0).all()
    assert torch.allclose(raw["corr"], torch.ones(3, dtype=torch.float64))
    assert torch.allclose(scores["ssim"], torch.ones(3))
    assert torch.equal(scores["rmse"], torch.zeros(3))
    assert torch.allclose(scores["scc"], torch.ones(3))
    assert torch.allclose(scores["fsim"], torch.ones(3))


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_gaussian_noise_gives_the_analytic_psnr_and_rmse(sigma):
    # Unclipped noise of std sigma on data range 1: MSE = sigma^2, PSNR = -10 log10(sigma^2).
    # 4x3x64x64 samples put the MSE within ~1% (0.05 dB) of sigma^2.
    target = _texture((4, 3, 64, 64), low=0.4, high=0.6)
    noise = sigma * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    pred = target + noise
    assert pred.min() > 0 and pred.max() < 1  # no clipping bias
    expected = -10.0 * math.log10(sigma**2)
    assert psnr(pred, target).mean().item() == pytest.approx(expected, abs=0.15)
    assert rmse_255(pred, target).mean().item() == pytest.approx(255.0 * sigma, rel=0.02)


def test_psnr_of_a_constant_offset_is_exact():
    target = _texture((2, 1, 32, 32))
    assert psnr(target + 0.1, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert rmse_255(target + 0.1, target).tolist() == pytest.approx([25.5, 25.5], abs=1e-4)


def test_structure_metrics_fall_as_noise_grows():
    target = _texture((2, 3, 64, 64), low=0.2, high=0.8)
    g = torch.Generator().manual_seed(2)
    previous = {name: 1.0 + 1e-6 for name in ("ssim", "scc", "fsim")}
    for sigma in (0.02, 0.08, 0.25):
        pred = (target + sigma * torch.randn(target.shape, generator=g)).clamp(0, 1)
        scores = pixel_scores(pred, target, names=("ssim", "scc", "fsim"))
        for name, values in scores.items():
            assert values.mean().item() < previous[name], (name, sigma)
            previous[name] = values.mean().item()


def test_to_unit_maps_the_dataset_range_to_0_1_and_clips():
    scaling = BandScaling((0.0, -25.0), (3000.0, 5.0))
    raw = torch.tensor([[[[0.0, 1500.0, 3000.0, 9000.0]], [[-25.0, -10.0, 5.0, -99.0]]]])
    unit = to_unit(raw, scaling)
    assert unit.dtype == torch.float32
    assert unit[0, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert unit[0, 1, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.0])
    with pytest.raises(ValueError, match="bands"):
        to_unit(raw[:, :1], scaling)


def test_metrics_reject_mismatched_shapes():
    a, b = torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
    for fn in PIXEL_METRICS.values():
        with pytest.raises(ValueError):
            fn(a, b)


def test_direction_flags_follow_the_papers_arrows():
    assert {n for n, m in METRIC_INFO.items() if not m.higher_is_better} == {"rmse", "fid", "kid"}
    assert set(PIXEL_METRICS) <= set(METRIC_INFO) and {"psnr", "corr"} <= set(METRIC_INFO)
    assert METRIC_INFO["psnr"].label == "PSNR (ref range)" and METRIC_INFO["psnr_dataset"].label == "PSNR (dataset range)"


def test_primary_psnr_uses_the_reference_chip_s_own_percentile_range():
    # per band: a ramp 0..999 has p0.5 = 4.995 and p99.5 = 994.005 (linear interpolation); an
    # offset of 10 raw units gives MSE 100, so PSNR = 20 log10(989.01 / 10)
    ramp = torch.arange(1000, dtype=torch.float64).reshape(1, 1, 20, 50)
    target = torch.cat([ramp, ramp * 0.01 + 500.0], dim=1)  # second band: range 9.8901, offset 0.1
    pred = target + torch.tensor([10.0, 0.1], dtype=torch.float64).reshape(1, 2, 1, 1)
    expected = 20 * math.log10(989.01 / 10.0)
    assert psnr_ref(pred, target).item() == pytest.approx(expected, abs=1e-4)
    # unchanged by a linear rescaling of the raw units (it is the chip's range, not the dataset's)
    assert psnr_ref(pred * 7 + 3, target * 7 + 3).item() == pytest.approx(expected, abs=1e-4)
    # a flat reference: the range floor keeps it finite
    flat = torch.full((1, 1, 8, 8), 200.0, dtype=torch.float64)
    assert psnr_ref(flat + 1.0, flat, floor=10.0).item() == pytest.approx(20.0, abs=1e-6)
    # invalid pixels count for nothing: a huge error there changes nothing
    valid = torch.ones(1, 20, 50, dtype=torch.bool)
    valid[0, 0, 0] = False
    spoiled = pred.clone()
    spoiled[0, :, 0, 0] = 1e9
    assert psnr_ref(spoiled, target, valid).item() == pytest.approx(psnr_ref(pred, target, valid).item(), abs=1e-9)


def test_a_source_independent_output_scores_low_on_the_primary_psnr_but_not_on_the_dataset_range():
    # A chip of texture in a narrow band of the dataset range and a guess at the chip's mean: the
    # dataset-range PSNR is flattering, the chip-range PSNR is not.
    target = _texture((2, 1, 64, 64), low=0.40, high=0.45)
    guess = torch.full_like(target, 0.425)
    assert psnr(guess, target).mean() > 35
    assert psnr_ref(guess, target).mean() < 12


def test_corr_is_pearson_per_band_and_zero_for_unrelated_or_constant_outputs():
    target = _texture((4, 2, 64, 64), seed=0)
    other = _texture((4, 2, 64, 64), seed=5)
    assert torch.allclose(corr(3 * target - 1, target), torch.ones(4, dtype=torch.float64), atol=1e-6)  # any linear map
    assert torch.allclose(corr(-target, target), -torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert corr(other, target).abs().max() < 0.05
    assert torch.equal(corr(torch.full_like(target, 0.5), target), torch.zeros(4, dtype=torch.float64))
    # per band, then the mean: one band right, one band unrelated
    mixed = torch.cat([target[:, :1], other[:, 1:]], dim=1)
    assert corr(mixed, target).tolist() == pytest.approx((0.5 + 0.5 * corr(other, target)).tolist(), abs=0.03)
    x = target[0, 0].flatten().double()
    y = (target[0, 0] + other[0, 0]).flatten().double()
    r = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    assert corr((target + other)[:1, :1], target[:1, :1]).item() == pytest.approx(r, abs=1e-6)


def test_scc_is_zero_for_unrelated_or_constant_outputs():
    target = _texture((2, 3, 48, 48), seed=0)
    assert scc(_texture((2, 3, 48, 48), seed=7), target).abs().max() < 0.05
    assert torch.equal(scc(torch.full_like(target, 0.5), target), torch.zeros(2))


def test_scc_and_ssim_ignore_what_they_should():
    # SCC correlates high-pass details: a brightness offset leaves it at 1, SSIM does not.
    target = _texture((1, 1, 48, 48))
    assert scc(target + 0.05, target).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(target + 0.05, target).item() < 1.0


def test_phase_congruency_is_dimensionless_and_peaks_at_edges():
    # A step with mild noise: the noise threshold (what makes PC defined in flat areas) needs some.
    img = torch.zeros(1, 128, 128, dtype=torch.float64)
    img[:, :, 64:] = 200.0  # edges at columns 63|64 and (the FFT wraps) 127|0
    img += torch.randn(img.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pc = phase_congruency(img)
    assert pc.shape == (1, 128, 128)
    assert 0.0 <= pc.min().item() and pc.max().item() <= 1.0
    assert pc[0, :, 63:65].mean() > 0.7  # on the edge
    assert pc[0, :, 24:30].mean() < 0.05 and pc[0, :, 88:94].mean() < 0.05  # mid-plateau
    # contrast scaling changes nothing: PC measures phase agreement, not amplitude
    assert torch.allclose(phase_congruency(img * 0.05), pc, atol=1e-3)


def test_gradient_magnitude_of_a_ramp_is_its_slope():
    ramp = torch.arange(16, dtype=torch.float64).repeat(1, 16, 1) * 3.0  # slope 3 along x
    g = gradient_magnitude(ramp)
    # Scharr/16 of a unit-slope ramp is (3+10+3)*2/16 = 2 per unit slope
    assert torch.allclose(g[0, 1:-1, 1:-1], torch.full((14, 14), 6.0, dtype=torch.float64))


def test_fsim_of_multiband_images_is_the_mean_over_bands():
    target = _texture((2, 2, 48, 48), low=0.1, high=0.9)
    pred = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    per_band = torch.stack([fsim(pred[:, i : i + 1], target[:, i : i + 1]) for i in range(2)], 1)
    assert torch.allclose(fsim(pred, target), per_band.mean(1), atol=1e-6)
    assert (fsim(pred, target) < 1).all()


def test_fsim_of_rgb_uses_chroma():
    # A hue change that keeps luminance identical is invisible to grey FSIM but not to FSIMc.
    target = _texture((1, 3, 48, 48), low=0.3, high=0.6)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    shift = torch.tensor([0.1, -0.1 * 0.299 / 0.587, 0.0]).view(1, 3, 1, 1)  # zero luma change
    assert (shift * luma).sum().abs() < 1e-7
    pred = target + shift
    assert fsim(pred, target).item() < 0.999
    grey = lambda x: (x * luma).sum(1, keepdim=True)  # noqa: E731
    assert fsim(grey(pred), grey(target)).item() == pytest.approx(1.0, abs=1e-6)


def test_fsim_of_constant_images_is_defined():
    flat = torch.full((1, 1, 32, 32), 0.5)
    assert fsim(flat, flat).item() == pytest.approx(1.0)
    assert 0.0 < fsim(flat, flat * 0.5).item() < 1.0

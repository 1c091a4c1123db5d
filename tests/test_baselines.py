"""Baselines fit what they should: the train mean and oracle-mean constants in raw units, the
luminance map, band maths recovered by pixel-regression on real Sentinel-2 bands, and a U-Net that
learns under its L1 step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.baselines import (
    Luminance,
    PairwiseUNet,
    PixelRegression,
    TrainMean,
    masked_l1,
    oracle_mean,
    polynomial_terms,
    train_pairwise_unet,
    unet_depth_for,
    unet_l1_step,
)
from earthgen_cli.modalities import luminance
from earthgen_cli.modalities import BandScaling, default_scaling
from earthgen_cli.models.unet import UNet, UNetConfig


def real_scenes(root, names):
    """Model-space tensors {name: (N, C, 120, 120)} of every 120x120 BigEarthNet scene."""
    import rasterio

    out = {n: [] for n in names}
    # the 120x120 BigEarthNet patches (other bigearthnet_* folders hold larger mosaics)
    for folder in sorted(f for d in ("bigearthnet_mm", "bigearthnet_s2only") for f in (root / d).glob("*")):
        for name, file in names.items():
            with rasterio.open(folder / file) as src:
                out[name].append(src.read().astype(np.float32))
    return {n: default_scaling(n, a[0].shape[0]).to_model(torch.from_numpy(np.stack(a)))
            for n, a in out.items()}


@pytest.fixture(scope="module")
def optical(shared_data):
    return real_scenes(shared_data, {"rgb": "s2_rgb.tif", "nir": "s2_nir.tif"})


def test_train_mean_is_a_constant_at_the_raw_per_band_mean_of_valid_pixels():
    # a log normalisation (not linear in raw units): the model-space mean would be another number
    scale = BandScaling((0.0, 1.0), (8.0, 9.0), log=True) if "log" in BandScaling.__dataclass_fields__ \
        else BandScaling((0.0, 1.0), (3000.0, 5000.0))
    g = torch.Generator().manual_seed(0)
    raw1, raw2 = 100 + 900 * torch.rand(3, 2, 4, 4, generator=g), 100 + 900 * torch.rand(2, 2, 4, 4, generator=g)
    v1 = torch.ones(3, 4, 4, dtype=torch.bool)
    v1[0, 0, 0] = False
    v2 = torch.ones(2, 4, 4, dtype=torch.bool)
    raw1[0, :, 0, 0] = 1e6  # an invalid pixel must not count
    t1, t2 = scale.to_model(raw1.double()), scale.to_model(raw2.double())
    model = TrainMean.fit([(t1, t1, v1), (t2, t2, v2)], scale)
    raw = torch.cat([raw1, raw2]).double().movedim(1, 0).flatten(1)  # (C, N)
    valid = torch.cat([v1, v2]).flatten()
    assert torch.allclose(model.raw, raw[:, valid].mean(dim=1), rtol=1e-9)
    pred = model.predict(torch.zeros(5, 7, 6, 8))
    assert pred.shape == (5, 2, 6, 8) and pred.dtype == torch.float64
    assert torch.allclose(scale.from_model(pred), model.raw[None, :, None, None].expand(5, 2, 6, 8), rtol=1e-9)
    with pytest.raises(EarthgenError, match="no valid"):
        TrainMean.fit([(t1, t1, torch.zeros(3, 4, 4, dtype=torch.bool))], scale)


def test_oracle_mean_is_each_chip_s_own_raw_mean():
    scale = BandScaling((0.0,), (1000.0,))
    raw = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]], [[[10.0, 10.0], [10.0, 50.0]]]], dtype=torch.float64)
    valid = torch.tensor([[[True, True], [True, True]], [[True, True], [True, False]]])
    out = scale.from_model(oracle_mean(scale.to_model(raw), valid, scale))
    assert torch.allclose(out[0], torch.full((1, 2, 2), 4.0, dtype=torch.float64))
    assert torch.allclose(out[1], torch.full((1, 2, 2), 10.0, dtype=torch.float64))


def test_luminance_baseline_is_bt601_in_raw_units():
    rgb_s, pan_s = BandScaling((0.0,) * 3, (3000.0,) * 3), BandScaling((100.0,), (2500.0,))
    raw = torch.tensor([[[[1000.0]], [[2000.0]], [[500.0]]]])
    pred = Luminance(rgb_s, pan_s).predict(rgb_s.to_model(raw))
    assert pan_s.from_model(pred).item() == pytest.approx(0.299 * 1000 + 0.587 * 2000 + 0.114 * 500, rel=1e-6)
    assert pan_s.from_model(pred).item() == pytest.approx(float(luminance(raw.numpy())[0, 0, 0, 0]), rel=1e-6)
    with pytest.raises(EarthgenError, match="3-band"):
        Luminance(rgb_s, pan_s).predict(torch.zeros(1, 1, 2, 2))


def test_polynomial_terms_count():
    # C(C + d, d) monomials of C bands up to degree d
    assert len(polynomial_terms(3, 2)) == 10 and len(polynomial_terms(6, 3)) == 84
    assert polynomial_terms(2, 1) == ((), (0,), (1,))


def test_pixel_regression_recovers_known_band_maths_on_real_bands(optical):
    rgb = optical["rgb"]  # (14, 3, 120, 120) real reflectances in model space
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    target = torch.cat([0.2 + 0.5 * r - 0.3 * g + 0.25 * b * b + 0.1 * r * g, 0.7 * b - 0.4], dim=1)
    # invalid pixels carry garbage the fit must not see
    valid = torch.ones(rgb.shape[0], 120, 120, dtype=torch.bool)
    valid[:, :10] = False
    noisy_target = target.clone()
    noisy_target[:, :, :10] = 50.0
    train = [(rgb[i : i + 4], noisy_target[i : i + 4], valid[i : i + 4]) for i in range(0, 12, 4)]
    model = PixelRegression.fit(train, degree=2, ridge=0.0)
    coef = dict(zip(model.terms, model.coef[:, 0].tolist()))
    assert coef[()] == pytest.approx(0.2, abs=1e-6) and coef[(0,)] == pytest.approx(0.5, abs=1e-6)
    assert coef[(0, 1)] == pytest.approx(0.1, abs=1e-5) and coef[(2, 2)] == pytest.approx(0.25, abs=1e-5)
    held_out = rgb[12:]
    assert torch.allclose(model.predict(held_out), target[12:], atol=1e-4)
    linear = PixelRegression.fit(train, degree=1)
    assert (linear.predict(held_out) - target[12:]).abs().max() > 1e-3  # degree 1 cannot
    with pytest.raises(EarthgenError, match="3 source bands"):
        model.predict(torch.zeros(1, 2, 4, 4))


def test_pixel_regression_beats_the_mean_image_for_rgb_to_nir_on_real_chips(optical):
    rgb, nir = optical["rgb"], optical["nir"]
    train = [(rgb[i : i + 5], nir[i : i + 5], None) for i in range(0, 10, 5)]
    test_src, test_tgt = rgb[10:], nir[10:]
    err = {m.name: (m.predict(test_src) - test_tgt).abs().mean().item()
           for m in (PixelRegression.fit(train, degree=2), TrainMean.fit(train, default_scaling("nir", 1)))}
    assert err["pixel-regression"] < 0.8 * err["mean"], err


def test_unet_shapes_and_size_check():
    model = UNet(UNetConfig(2, 3, base_channels=8, depth=3))
    assert model(torch.zeros(2, 2, 16, 24)).shape == (2, 3, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 2, 12, 16))
    with pytest.raises(ValueError):
        UNetConfig(0, 3)


def test_unet_l1_steps_learn_a_band_mapping():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    source = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    target = torch.cat([0.6 * source[:, :1] - 0.3 * source[:, 2:], source[:, 1:2].abs()], dim=1)
    model = UNet(UNetConfig(3, 2, base_channels=16, depth=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    valid = torch.ones(4, 16, 16, dtype=torch.bool)
    first = unet_l1_step(model, opt, source, target, valid)
    for _ in range(150):
        last = unet_l1_step(model, opt, source, target, valid)
    assert last < 0.25 * first, (first, last)
    baseline = PairwiseUNet(model)
    pred = baseline.predict(source)
    assert not pred.requires_grad and model.training  # predict leaves the mode as it found it
    assert masked_l1(pred, target, None).item() < 0.25 * first


def test_masked_l1_ignores_invalid_pixels():
    pred, target = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    target[..., 0, 0] = 100.0
    valid = torch.ones(1, 2, 2, dtype=torch.bool)
    valid[0, 0, 0] = False
    assert masked_l1(pred, target, valid).item() == pytest.approx(1.0)


def test_unet_depth_keeps_a_2x2_bottleneck():
    assert [unet_depth_for(s) for s in (40, 64, 120, 256, 6)] == [3, 5, 3, 5, 1]
    with pytest.raises(EarthgenError, match="even chip sides"):
        unet_depth_for(5)


def test_train_pairwise_unet_runs_its_steps_over_epochs_and_is_seeded():
    g = torch.Generator().manual_seed(2)
    source = torch.rand(6, 1, 8, 8, generator=g)
    passes = []

    def batches():
        passes.append(1)
        for i in range(0, 6, 2):  # 3 batches per pass
            yield source[i : i + 2], 0.5 * source[i : i + 2], None

    config = UNetConfig(1, 1, base_channels=8, depth=2)
    a = train_pairwise_unet(batches, config, steps=7, seed=3)
    assert len(passes) == 3  # 7 steps = 2 full passes + 1 batch of the third
    b = train_pairwise_unet(batches, config, steps=7, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not a.training
    with pytest.raises(EarthgenError, match="no chips"):
        train_pairwise_unet(lambda: iter(()), config, steps=2)

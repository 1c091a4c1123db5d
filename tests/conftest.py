"""Shared fixtures: the real sample data (skipped when absent), small real GeoTIFFs, and a count of
the tiles in each forward pass of the network."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("EARTHGEN_SHARED_DATA", ROOT.parent / "shared" / "data"))


# With EARTHGEN_REQUIRE_DATA=1 (.ci/run sets it when ../shared/data exists) a skip is a failure,
# so a green run really ran the tests on real data; only these reasons may still skip (an optional
# extra that is not installed, a sandbox where /proc is writable, a default model that validates
# every rgb direction).
REQUIRE_DATA = os.environ.get("EARTHGEN_REQUIRE_DATA", "") == "1"
ALLOWED_SKIPS = ("could not import", "cannot make a folder read-only", "/proc is writable", "every rgb direction of the default model is validated",
                 "the [text] extra is installed")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real co-registered scenes); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_DATA and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(a in reason for a in ALLOWED_SKIPS):
            report.outcome = "failed"
            report.longrepr = f"EARTHGEN_REQUIRE_DATA=1 but the test skipped: {reason}"


def pytest_terminal_summary(terminalreporter):
    skipped = len(terminalreporter.stats.get("skipped", []))
    terminalreporter.write_line(f"earthgen: {skipped} test(s) skipped"
                                f"{' (EARTHGEN_REQUIRE_DATA=1: only optional extras may skip)' if REQUIRE_DATA else ''}")


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads (float sums reduce in an order that depends on
    it, so bit-exact comparisons pin it), then restore the count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_geotiff(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32633",
                  transform=None, nodata=None, descriptions=None, tags=None, tiled: bool = True) -> Path:
    """Write (C, H, W) `data` as a small real GeoTIFF (UTM 33N, 10 m pixels by default)."""
    import rasterio
    from rasterio.transform import from_origin

    count, height, width = data.shape
    profile = {
        "driver": "GTiff", "count": count, "height": height, "width": width,
        "dtype": data.dtype.name, "crs": crs,
        "transform": transform if transform is not None else from_origin(500000.0, 4650000.0, 10.0, 10.0),
        "nodata": nodata,
    }
    if tiled and height >= 16 and width >= 16:
        profile.update(tiled=True, blockxsize=16 * max(1, min(width, 256) // 16),
                       blockysize=16 * max(1, min(height, 256) // 16))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture
def geotiff(tmp_path):
    """Factory: geotiff(name, data, **profile) -> path of a GeoTIFF written under tmp_path."""

    def make(name: str, data: np.ndarray, **kwargs) -> Path:
        return write_geotiff(tmp_path / name, data, **kwargs)

    return make


@pytest.fixture
def forward_batches(monkeypatch):
    """The batch of every forward pass of the network (tiles per model call)."""
    from earthgen_cli.models.earthgen import EarthGenModel

    seen: list[int] = []
    forward = EarthGenModel.forward

    def counting(self, latents, *args, **kwargs):
        seen.append(int(latents[0].shape[0]))
        return forward(self, latents, *args, **kwargs)

    monkeypatch.setattr(EarthGenModel, "forward", counting)
    return seen

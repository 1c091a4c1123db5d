"""Helpers for the dataset tests: scene folders made of real sample rasters (crops and warps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from typer.testing import CliRunner

from conftest import write_geotiff

BEN_MM = "bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48"  # S1 + S2, 120x120 @10 m


def read_real(path: Path):
    with rasterio.open(path) as src:
        return src.read(), src.crs.to_string(), src.transform, src.nodata


def copy_raster(src: Path, dst: Path, **override) -> Path:
    """Rewrite a real raster (same data, CRS, transform) so a test can change one property."""
    data, crs, transform, nodata = read_real(src)
    kwargs = {"crs": crs, "transform": transform, "nodata": nodata}
    kwargs.update(override)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return write_geotiff(dst, data, **kwargs)


def ben_scene(shared: Path, folder: Path, sar: bool = True) -> Path:
    """A scene folder with the real BigEarthNet S2 RGB and S1 VV/VH of one patch."""
    src = shared / BEN_MM
    copy_raster(src / "s2_rgb.tif", folder / "rgb.tif")
    if sar:
        copy_raster(src / "s1_vvvh_db.tif", folder / "sar.tif")
    return folder


def write_config(path: Path, root: Path, body: str) -> Path:
    path.write_text(f"root: {root}\nsources:\n{body}")
    return path


RGB_SAR_SOURCE = """  - name: ben
    scenes: scenes/*
    modalities:
      rgb: {file: rgb.tif}
      sar: {file: sar.tif, units: db}
"""


def shifted_copy(src: Path, dst: Path, dx_px: float, dy_px: float) -> Path:
    """The real raster resampled onto a grid shifted by a fraction of a pixel: the same ground,
    other pixel centres (what a misregistered SAR product looks like)."""
    from rasterio.warp import Resampling, reproject

    data, crs, t, nodata = read_real(src)
    shifted = t @ Affine.translation(dx_px, dy_px)
    out = np.full(data.shape, np.nan, dtype=np.float32)
    reproject(data.astype(np.float32), out, src_transform=t, src_crs=crs, dst_transform=shifted,
              dst_crs=crs, resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return write_geotiff(dst, out, crs=crs, transform=shifted, nodata=float("nan"))


def run_cli(args: list[str]):
    from earthgen_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])

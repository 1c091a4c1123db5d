"""Alignment onto the reference grid: sub-pixel shifted SAR, 20 m MS onto 10 m, linear SAR -> dB."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import zarr

from earthgen_cli.io.dataset_store import open_dataset
from scene_fixtures import BEN_MM, copy_raster, run_cli, shifted_copy, write_config

SOURCE = """  - name: ben
    scenes: scenes/*
    modalities:
      rgb: {file: rgb.tif}
      sar: {file: sar.tif, units: %s}
"""


def _build(cfg, out, *extra):
    res = run_cli(["build-dataset", out, "--config", cfg, "--chip", "32", "--workers", "1",
                   "--val-frac", "0", "--test-frac", "0", "--quiet", *extra])
    assert res.exit_code == 0, res.stderr
    return open_dataset(out)


def shift_estimate(ref, img):
    """Global translation d (rows, cols) with img(x) ~ ref(x + d), least squares on gradients."""
    gy, gx = np.gradient(ref.astype(np.float64), axis=(-2, -1))
    diff = (img - ref).astype(np.float64)
    ok = np.isfinite(diff) & np.isfinite(gx) & np.isfinite(gy)
    A = np.stack([gy[ok], gx[ok]], axis=1)
    d, *_ = np.linalg.lstsq(A, diff[ok], rcond=None)
    return d


def _window_of(bounds, transform):
    """Row/col of a chip's top-left corner on a grid (exact for grids that share the lattice)."""
    col, row = ~transform @ (bounds[0], bounds[3])
    return int(round(row)), int(round(col))


def test_subpixel_shifted_sar_is_aligned_to_the_optical_grid(shared_data, tmp_path):
    src = shared_data / BEN_MM
    scene = tmp_path / "scenes" / "s"
    copy_raster(src / "s2_rgb.tif", scene / "rgb.tif")
    # the same SAR ground, on a grid shifted by (0.4, 0.3) of a pixel
    shifted_copy(src / "s1_vvvh_db.tif", scene / "sar.tif", 0.4, 0.3)
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, SOURCE % "db")
    ds = _build(cfg, tmp_path / "out")

    scenes = (tmp_path / "out" / "scenes.csv").read_text()
    assert "sar:shift=0.5000px" in scenes and "warped" in scenes  # hypot(0.4, 0.3) = 0.5
    assert ds.meta["max_grid_shift_px"] == pytest.approx(0.5, abs=1e-6)

    with rasterio.open(src / "s1_vvvh_db.tif") as f:
        truth, t_truth = f.read().astype(np.float32), f.transform
    with rasterio.open(scene / "sar.tif") as f:
        shifted = f.read()
    arr = zarr.open_group(tmp_path / "out" / "chips.zarr", mode="r")
    err_aligned, err_naive = [], []
    for chip in ds.chips:
        assert chip.modalities == ("rgb", "sar")
        r, c = _window_of(chip.bounds, t_truth)  # the chip's ground on the original SAR grid
        sar = arr["sar"][chip.row]
        ref = truth[:, r:r + 32, c:c + 32]
        naive = shifted[:, r:r + 32, c:c + 32]  # same pixel indexes, ground off by the shift
        ok = np.isfinite(sar) & np.isfinite(naive)
        err_aligned.append(shift_estimate(ref, sar))
        err_naive.append(shift_estimate(ref, naive))
        # the optical chip is the original RGB at the same place: both cover the same ground
        with rasterio.open(src / "s2_rgb.tif") as f:
            rgb = f.read(window=((r, r + 32), (c, c + 32))).astype(np.float32)
        np.testing.assert_array_equal(arr["rgb"][chip.row], rgb)
    # the aligned SAR sits where the original does; read unaligned it would be off by the shift
    assert np.abs(np.mean(err_aligned, axis=0)).max() < 0.05
    np.testing.assert_allclose(np.mean(err_naive, axis=0), [0.3, 0.4], atol=0.1)


def test_ms_20m_goes_onto_the_10m_grid(shared_data, tmp_path):
    cfg = write_config(tmp_path / "ds.yaml", shared_data, """  - name: ben
    scenes: bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48
    modalities:
      rgb: {file: s2_rgb.tif}
      ms: {file: s2_ms20m.tif}
""")
    ds = _build(cfg, tmp_path / "out")
    arr = zarr.open_group(tmp_path / "out" / "chips.zarr", mode="r")
    with rasterio.open(shared_data / BEN_MM / "s2_ms20m.tif") as f:
        ms20, t20 = f.read().astype(np.float32), f.transform
    for chip in ds.chips:
        ms = arr["ms"][chip.row]
        assert ms.shape == (6, 32, 32) and np.isfinite(ms).all()
        r, c = _window_of(chip.bounds, t20)  # 20 m pixel under the chip's corner
        # block-averaging the 10 m chip back to 20 m gives about the original 20 m pixels, and
        # far better than the neighbouring 20 m pixels would (no half-pixel or pixel offset)
        down = ms.reshape(6, 16, 2, 16, 2).mean(axis=(2, 4))[:, 2:-2, 2:-2]
        orig = ms20[:, r + 2:r + 14, c + 2:c + 14]
        moved = ms20[:, r + 3:r + 15, c + 2:c + 14]
        err = np.abs(down - orig).mean()
        assert err < 0.05 * orig.mean() and err < 0.5 * np.abs(down - moved).mean()


def test_linear_sar_becomes_db_and_nonpositive_becomes_nodata(shared_data, tmp_path):
    src = shared_data / BEN_MM
    scene = tmp_path / "scenes" / "s"
    copy_raster(src / "s2_rgb.tif", scene / "rgb.tif")
    with rasterio.open(src / "s1_vvvh_db.tif") as f:
        db = f.read()
        linear = (10.0 ** (db / 10.0)).astype(np.float32)
        linear[:, :3, :] = 0.0  # three rows without a return: nodata in dB
        copy_raster(src / "s1_vvvh_db.tif", scene / "sar.tif")
        with rasterio.open(scene / "sar.tif", "r+") as g:
            g.write(linear)
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, SOURCE % "linear")
    ds = _build(cfg, tmp_path / "out", "--max-nodata", "0.2")
    arr = zarr.open_group(tmp_path / "out" / "chips.zarr", mode="r")
    top = [c for c in ds.chips if c.bounds[3] == max(ch.bounds[3] for ch in ds.chips)]
    assert top
    for chip in ds.chips:
        r, c = _window_of(chip.bounds, rasterio.open(src / "s1_vvvh_db.tif").transform)
        sar = arr["sar"][chip.row]
        want = db[:, r:r + 32, c:c + 32].copy()
        if r < 3:
            want[:, : 3 - r, :] = np.nan
        np.testing.assert_allclose(sar, want, rtol=0, atol=1e-4)


def test_gsd_and_crs_override_the_reference_grid(shared_data, tmp_path):
    cfg = write_config(tmp_path / "ds.yaml", shared_data, """  - name: ben
    scenes: bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48
    modalities:
      rgb: {file: s2_rgb.tif}
      sar: {file: s1_vvvh_db.tif}
""")
    ds = _build(cfg, tmp_path / "g20", "--gsd", "20", "--chip", "16")
    assert {c.gsd for c in ds.chips} == {20.0} and len(ds.chips) == 16  # 60x60 px at 20 m: 0,16,32,44
    assert all(c.bounds[2] - c.bounds[0] == 320.0 for c in ds.chips)
    ds = _build(cfg, tmp_path / "laea", "--crs", "EPSG:3035", "--gsd", "10")
    assert {c.crs for c in ds.chips} == {"EPSG:3035"} and ds.chips
    arr = zarr.open_group(tmp_path / "laea" / "chips.zarr", mode="r")
    assert all(np.isfinite(arr["sar"][c.row]).mean() > 0.95 for c in ds.chips)
    res = run_cli(["build-dataset", tmp_path / "bad", "--config", cfg, "--crs", "EPSG:nope"])
    assert res.exit_code == 2 and "--crs" in res.stderr

"""The Python API over xarray (issue 14): the same engine as the CLI, so the same values for the
same seed; georeferencing, nodata and provenance kept; dask-backed input and lazy output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_geotiff
from scene_fixtures import BEN_MM, run_cli

rioxarray = pytest.importorskip("rioxarray")
import earthgen_cli as eg  # noqa: E402


def _same_grid(a, b) -> None:
    assert a.rio.crs == b.rio.crs and a.rio.transform() == b.rio.transform() and a.shape == b.shape


def test_translate_matches_the_cli_and_keeps_georeferencing(tmp_path):
    data = np.random.default_rng(0).integers(1, 4000, (3, 70, 90)).astype(np.uint16)
    data[:, :5, :7] = 0
    src = write_geotiff(tmp_path / "rgb.tif", data, nodata=0)
    assert run_cli(["translate", src, "--from", "rgb", "--to", "pan", "--model", "luminance", "-q",
                    "-o", tmp_path / "cli.tif"]).exit_code == 0
    cli = rioxarray.open_rasterio(tmp_path / "cli.tif")
    da = rioxarray.open_rasterio(src, chunks={"x": 32, "y": 32})  # dask-backed, read by chunks
    out = eg.translate(da, to="pan", source="rgb", model="luminance")
    assert isinstance(out.data, np.ndarray) and np.array_equal(out.values, cli.values)
    _same_grid(out, cli)
    assert out.rio.nodata == cli.rio.nodata and out.attrs["EARTHGEN_MODALITY"] == "pan"
    lazy = eg.translate(da, to="pan", source="rgb", model="luminance", output=str(tmp_path / "api.tif"))
    assert type(lazy.data).__module__.startswith("dask") and np.array_equal(lazy.values, cli.values)


def test_default_model_translate_and_inpaint_match_the_cli(shared_data, tmp_path):
    scene = shared_data / BEN_MM
    rgb = rioxarray.open_rasterio(scene / "s2_rgb.tif").isel(x=slice(0, 64), y=slice(0, 64))
    src = tmp_path / "rgb.tif"
    rgb.rio.to_raster(src)
    model = eg.load_model()  # loaded once for both calls
    assert run_cli(["translate", src, "--to", "nir", "--estimate", "mean", "-q", "-o", tmp_path / "nir.tif"]).exit_code == 0
    out = eg.translate(rgb, to="nir", source="rgb", estimate="mean", model=model)
    assert np.array_equal(out.values, rioxarray.open_rasterio(tmp_path / "nir.tif").values)
    mask = rgb.isel(band=0).copy(data=np.zeros((64, 64), np.uint8))
    mask.attrs = {}
    mask[20:40, 20:40] = 1
    mask.rio.to_raster(tmp_path / "mask.tif")
    # both at their default steps (one call for the default model's context fill)
    r = run_cli(["inpaint", src, "--mask", tmp_path / "mask.tif", "-q", "-o", tmp_path / "inp.tif"])
    assert r.exit_code == 0, r.stderr
    filled = eg.inpaint(rgb, mask, model=model, source="rgb")
    cli = rioxarray.open_rasterio(tmp_path / "inp.tif")
    assert np.array_equal(filled.values, cli.values)
    assert str(cli.attrs["EARTHGEN_STEPS"]) == "1"  # so the API's identical fill took one call too
    _same_grid(filled, cli)
    keep = mask.values == 0
    assert np.array_equal(filled.values[:, keep], rgb.values[:, keep])  # unmasked pixels copied unchanged


def test_joint_and_extend_match_the_cli(tmp_path):
    box = "500000,4650000,500320,4650320"
    r = run_cli(["joint", "--pair", "rgb,nir", "--bbox", box, "--bbox-crs", "EPSG:32633", "--gsd", "10",
                 "--steps", "2", "-q", "-o", tmp_path / "cli"])
    assert r.exit_code == 0, r.stderr
    out = eg.joint("rgb,nir", [500000, 4650000, 500320, 4650320], 10, bbox_crs="EPSG:32633", steps=2)
    assert sorted(out) == ["nir", "rgb"]
    for m, da in out.items():
        cli = rioxarray.open_rasterio(tmp_path / "cli" / f"{m}.tif")
        assert np.array_equal(da.values, cli.values), m
        _same_grid(da, cli)
    wider = eg.extend(out["rgb"], 8, "east", steps=2, source="rgb")
    assert wider.sizes["x"] == out["rgb"].sizes["x"] + 8
    assert np.array_equal(wider.values[:, :, :32], out["rgb"].values)


def test_api_errors_are_earthgen_errors():
    from earthgen_cli.errors import EarthgenError

    with pytest.raises(EarthgenError, match="expected an xarray.DataArray"):
        eg.translate(np.zeros((3, 8, 8)), to="pan", model="luminance")
    import xarray as xr

    with pytest.raises(EarthgenError, match="has no CRS"):
        eg.translate(xr.DataArray(np.zeros((3, 8, 8), np.uint8), dims=("band", "y", "x")), to="pan",
                     source="rgb", model="luminance")

"""Every scene size: scenes whose sides are not a multiple of the model's tile multiple, scenes
smaller than one tile, and any --tile (issue 11). Tiles stay on the model's grid; the last tile
hangs past the scene edge onto padding that is cropped away."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from earthgen_cli.inference import scene_translate
from earthgen_cli.inference.translator import IdentityTranslator
from earthgen_cli.models.config import CodecConfig
from generate_fixtures import assert_same_up_to_rounding
from scene_fixtures import run_cli
from test_checkpoint import _info, _save

SIZES = [(50, 120), (61, 37), (30, 50)]  # (height, width): none a multiple of 8, the last below one tile


@pytest.fixture(scope="module")
def ckpt8(tmp_path_factory):
    """A real (random-weight) rgb+sar checkpoint whose tile multiple is 8 (codec factor 4 x patch 2)."""
    path = tmp_path_factory.mktemp("ck8") / "step_000012"
    _save(path, _info(codec=CodecConfig(factor=4), patch=2))
    (path / "ema.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    return path


def _sar(geotiff, h, w, seed=0):
    data = np.random.default_rng(seed).uniform(-25, 0, (2, h, w)).astype(np.float32)
    data[:, h - 3 :, : w // 3] = -9999.0  # nodata along the bottom edge, inside the padded tiles
    return geotiff(f"sar_{h}x{w}.tif", data, nodata=-9999.0), data[0] != -9999.0


def _translate(src, out, ckpt, tile, *extra):
    return run_cli(["translate", src, "--from", "sar", "--to", "rgb", "--model", ckpt, "-o", out,
                    "--tile", tile, "--steps", "2", "--device", "cpu", "-q", *extra])


@pytest.mark.parametrize("h,w", SIZES)
def test_translate_any_scene_size_with_a_checkpoint(geotiff, tmp_path, ckpt8, h, w):
    src, valid = _sar(geotiff, h, w)
    for tile in (16, 32, 48, 64):
        out, conf = tmp_path / f"rgb_{tile}.tif", tmp_path / f"conf_{tile}.tif"
        r = _translate(src, out, ckpt8, tile, "--confidence", conf)
        assert r.exit_code == 0, r.stderr
        with rasterio.open(src) as a, rasterio.open(out) as b, rasterio.open(conf) as c:
            for o in (b, c):
                assert (o.height, o.width, o.crs, o.transform) == (a.height, a.width, a.crs, a.transform)
            confidence = c.read(1)
        # the confidence raster is NaN exactly at the source's nodata, finite and in (0, 1] elsewhere
        assert np.array_equal(np.isnan(confidence), ~valid)
        assert np.all((confidence[valid] > 0) & (confidence[valid] <= 1))


def test_odd_size_is_seeded_and_batch_size_changes_rounding_only(geotiff, tmp_path, ckpt8):
    src, _ = _sar(geotiff, 61, 37)
    runs = {}
    for bs in ("1", "5"):
        r = _translate(src, tmp_path / f"b{bs}.tif", ckpt8, 32, "--overlap", "12", "--batch-size", bs)
        assert r.exit_code == 0, r.stderr
        with rasterio.open(tmp_path / f"b{bs}.tif") as ds:
            runs[bs] = ds.read()
    # noise keyed by position on the scene grid; another batch size changes float rounding only
    assert_same_up_to_rounding(runs["1"], runs["5"])


def test_tile_off_the_model_grid_is_refused_with_the_nearest_sizes(geotiff, tmp_path, ckpt8):
    src, _ = _sar(geotiff, 50, 120)
    out = tmp_path / "o.tif"
    r = _translate(src, out, ckpt8, 100)
    assert r.exit_code != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "earthgen: error: --tile 100 must be a multiple of 8 for this model (codec factor x patch); try 96 or 104"]
    assert not out.exists()


class AlignedIdentity(IdentityTranslator):
    """The identity on a coarse grid: checks it only ever sees tiles on that grid."""

    tile_multiple = 8

    def translate(self, batch, target):
        src = batch.sources[target]
        assert src.shape[-2] % 8 == 0 and src.shape[-1] % 8 == 0, src.shape
        assert all(y % 8 == 0 and x % 8 == 0 for y, x in batch.origins), batch.origins
        return src


@pytest.mark.parametrize("h,w", [*SIZES, (1, 9), (97, 203)])
@pytest.mark.parametrize("tile,overlap", [(16, 0), (16, 5), (32, 12), (48, 8), (256, 64)])
def test_identity_on_a_coarse_grid_is_bit_exact_on_any_size(geotiff, tmp_path, monkeypatch, h, w, tile, overlap):
    monkeypatch.setattr(scene_translate, "STRIPE_WIDTH", 40)  # several stripes: the carry path meets the padding
    monkeypatch.setattr(scene_translate, "BLOCKSIZE", 16)
    data = np.random.default_rng(h * w).integers(1, 60000, (3, h, w)).astype(np.uint16)
    data[:, : min(h, 4), : min(w, 5)] = 0  # nodata
    src = geotiff("rgb.tif", data, nodata=0)
    out = tmp_path / "out.tif"
    summary = scene_translate.translate_scene([scene_translate.SourceSpec(str(src), "rgb")], "rgb", AlignedIdentity(),
                                              scene_translate.TileOptions(tile, overlap, batch_size=3),
                                              scene_translate.OutputOptions(str(out)))
    assert (summary.height, summary.width) == (h, w)
    with rasterio.open(out) as dst:
        assert np.array_equal(dst.read(), data) and dst.nodata == 0


def test_joint_on_an_odd_grid_with_any_overlap(tmp_path, ckpt8):
    # 37 x 61 px at 10 m; --overlap 12 is not a multiple of the tile multiple 8
    r = run_cli(["joint", "--pair", "rgb,sar", "--bbox", "500000,4650000,500370,4650610", "--bbox-crs",
                 "EPSG:32633", "--gsd", "10", "-m", ckpt8, "-o", tmp_path / "j", "--tile", "32", "--overlap", "12",
                 "--steps", "2", "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.stderr
    for m, bands in (("rgb", 3), ("sar", 2)):
        with rasterio.open(tmp_path / "j" / f"{m}.tif") as ds:
            a = ds.read()
            assert a.shape == (bands, 61, 37) and ds.crs.to_epsg() == 32633
            assert np.all(np.isfinite(a))


def test_scene_layout_latent_tiles_are_the_pixel_tiles_scaled():
    from earthgen_cli.inference.canvas import SceneLayout

    for h, w, tile, overlap in [(61, 37, 32, 12), (1098, 1098, 256, 64), (30, 50, 64, 16), (100, 70, 32, 8)]:
        layout = SceneLayout(h, w, 4, 8, tile, overlap)
        px, lat = layout.pixel, layout.latent
        assert (layout.hp, layout.wp) == (-(-h // 8) * 8, -(-w // 8) * 8)
        assert layout.latent_shape == (layout.hp // 4, layout.wp // 4)
        assert [s // 4 for s in px.row_starts] == lat.row_starts and [s // 4 for s in px.col_starts] == lat.col_starts
        assert all(s % 8 == 0 for s in px.row_starts + px.col_starts)
        assert px.row_starts[-1] + px.tile_h == layout.hp and px.col_starts[-1] + px.tile_w == layout.wp

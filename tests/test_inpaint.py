"""earthgen inpaint: known pixels bit-for-bit unchanged, masks, nodata, SAR guidance, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from earthgen_cli.io.identity import directory_identity
from conftest import write_geotiff
from generate_fixtures import (assert_same_up_to_rounding, masked_smooth_checkpoint, random_checkpoint,
                               shared_smooth_checkpoint)
from scene_fixtures import BEN_MM, copy_raster, run_cli


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rand") / "ck")


@pytest.fixture
def scene(shared_data, tmp_path):
    """The real BigEarthNet RGB (uint16) and SAR of one patch, and a mask of a 'cloud' block."""
    rgb = copy_raster(shared_data / BEN_MM / "s2_rgb.tif", tmp_path / "rgb.tif")
    with rasterio.open(rgb) as src:
        mask = np.zeros((1, src.height, src.width), np.uint8)
        mask[0, 30:70, 40:95] = 1
        write_geotiff(tmp_path / "mask.tif", mask, crs=src.crs, transform=src.transform)
    return rgb, tmp_path / "mask.tif", shared_data / BEN_MM / "s1_vvvh_db.tif"


def read(path):
    with rasterio.open(path) as src:
        return src.read(), src.profile


def inpaint(ckpt, src, out, *extra):
    return run_cli(["inpaint", src, "--from", "rgb", "-m", ckpt, "-o", out, "--tile", "32", "--overlap", "8",
                    "--steps", "3", "-q", *extra])


def test_unmasked_pixels_unchanged_masked_regenerated(ckpt, scene, tmp_path):
    rgb, mask, _ = scene
    r = inpaint(ckpt, rgb, tmp_path / "o.tif", "--mask", mask)
    assert r.exit_code == 0, r.stderr
    (a, pa), (b, pb) = read(rgb), read(tmp_path / "o.tif")
    m = read(mask)[0][0] > 0
    assert b.dtype == a.dtype and pb["crs"] == pa["crs"] and pb["transform"] == pa["transform"]
    np.testing.assert_array_equal(b[:, ~m], a[:, ~m])  # every known pixel, bit for bit
    assert (b[:, m] != a[:, m]).mean() > 0.9
    with rasterio.open(tmp_path / "o.tif") as src:
        assert src.tags()["EARTHGEN_OPERATION"] == "inpaint"
        assert src.tags()["EARTHGEN_MODEL"].endswith("@" + directory_identity(ckpt)["sha256"])


def test_same_seed_same_output_and_the_known_region_steers(ckpt, scene, tmp_path):
    rgb, mask, _ = scene
    outs = {}
    for name, extra in (("a", []), ("a2", []), ("b", ["--batch-size", "1"]), ("c", ["--seed", "1"])):
        assert inpaint(ckpt, rgb, tmp_path / f"{name}.tif", "--mask", mask, *extra).exit_code == 0
        outs[name] = read(tmp_path / f"{name}.tif")[0]
    np.testing.assert_array_equal(outs["a"], outs["a2"])
    assert_same_up_to_rounding(outs["a"], outs["b"])
    m = read(mask)[0][0] > 0
    assert not np.array_equal(outs["a"][:, m], outs["c"][:, m])
    # Other known pixels, same seed: the generated pixels follow them (the known region is imposed).
    data, prof = read(rgb)
    write_geotiff(tmp_path / "dark.tif", (data // 4).astype(np.uint16), crs=prof["crs"], transform=prof["transform"])
    assert inpaint(ckpt, tmp_path / "dark.tif", tmp_path / "d.tif", "--mask", mask).exit_code == 0
    assert not np.array_equal(read(tmp_path / "d.tif")[0][:, m], outs["a"][:, m])


def test_nodata_mask_and_sar_guidance(ckpt, scene, tmp_path):
    rgb, _, sar = scene
    data, prof = read(rgb)
    holed = data.copy()
    holed[:, 10:50, 60:110] = 0
    write_geotiff(tmp_path / "holed.tif", holed, crs=prof["crs"], transform=prof["transform"], nodata=0)
    outs = []
    for k, extra in enumerate(([], ["--cond", f"sar={sar}"])):
        r = inpaint(ckpt, tmp_path / "holed.tif", tmp_path / f"o{k}.tif", "--mask", "nodata", *extra)
        assert r.exit_code == 0, r.stderr
        out, p = read(tmp_path / f"o{k}.tif")
        assert p["nodata"] == 0
        hole = np.zeros(out.shape[1:], bool)
        hole[10:50, 60:110] = True
        np.testing.assert_array_equal(out[:, ~hole], holed[:, ~hole])
        assert (out[:, hole] != 0).all()  # filled, and never written as the nodata value
        outs.append(out)
    assert not np.array_equal(outs[0], outs[1])  # the SAR condition changes the fill


def test_bad_input_one_line_nothing_written(ckpt, scene, tmp_path):
    rgb, mask, _ = scene
    with rasterio.open(rgb) as src:
        shifted = src.transform @ rasterio.Affine.translation(1, 0)
        write_geotiff(tmp_path / "off.tif", np.ones((1, 120, 120), np.uint8), crs=src.crs, transform=shifted)
        write_geotiff(tmp_path / "small.tif", np.ones((1, 60, 60), np.uint8), crs=src.crs, transform=src.transform)
        write_geotiff(tmp_path / "none.tif", np.zeros((1, 120, 120), np.uint8), crs=src.crs, transform=src.transform)
    cases = [(["--mask", tmp_path / "off.tif"], "not on the grid"),
             (["--mask", tmp_path / "small.tif"], "not on the grid"),
             (["--mask", tmp_path / "none.tif"], "masks no pixels"),
             (["--mask", "nodata"], "no nodata pixels"),
             (["--mask", mask, "--cond", f"nir={rgb}"], "never saw modality nir"),
             (["--mask", mask, "--tile", "31"], "--tile"),
             (["--mask", mask, "--fill", "harmonic"], "has no context fill"),
             (["--mask", mask, "--fill", "smooth"], "not one of blend, coherence, harmonic")]
    for args, message in cases:
        r = inpaint(ckpt, rgb, tmp_path / "o.tif", *args)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], (args, r.stderr)
        assert not (tmp_path / "o.tif").exists() and not list(tmp_path.glob(".earthgen-*"))


def test_fill_is_consistent_with_the_surroundings(tmp_path_factory, tmp_path):
    """A model that paints smooth scenes fills a hole in a flat scene near the scene's level."""
    smooth = shared_smooth_checkpoint(tmp_path_factory)
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 20:44, 20:44] = 1
    write_geotiff(tmp_path / "m.tif", mask)
    fills = []
    for level in (500, 2500):
        write_geotiff(tmp_path / f"{level}.tif", np.full((3, 64, 64), level, np.uint16))
        r = inpaint(smooth, tmp_path / f"{level}.tif", tmp_path / f"o{level}.tif", "--mask", tmp_path / "m.tif")
        assert r.exit_code == 0, r.stderr
        fills.append(read(tmp_path / f"o{level}.tif")[0][:, 20:44, 20:44].mean())
    assert fills[1] - fills[0] > 1000  # same seed: were the known region ignored, exactly 0


def test_token_times_model_fills_from_the_known_tokens_in_one_call(tmp_path):
    """A model trained on masked-slot samples (model.token_times) gets the known tokens clean at
    t=0, so even a single call (--steps 1: the posterior mean of the hole) fills a flat scene's hole
    at the scene's level. The same weights sampled the RePaint way (token_times off) see only
    noise there at t=1: their fill cannot depend on the surroundings at all (exactly the same)."""
    import json
    import shutil

    token = masked_smooth_checkpoint(tmp_path / "token")
    repaint = tmp_path / "repaint"
    shutil.copytree(token, repaint)
    cfg = json.loads((repaint / "config.json").read_text())
    assert cfg["model"]["token_times"] is True
    cfg["model"]["token_times"] = False
    (repaint / "config.json").write_text(json.dumps(cfg))
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 20:44, 20:44] = 1
    write_geotiff(tmp_path / "m.tif", mask)
    fills = {}
    for name, ck in (("token", token), ("repaint", repaint)):
        for level in (600, 2400):
            write_geotiff(tmp_path / f"{level}.tif", np.full((3, 64, 64), level, np.uint16))
            out = tmp_path / f"{name}{level}.tif"
            r = run_cli(["inpaint", tmp_path / f"{level}.tif", "--from", "rgb", "-m", ck, "-o", out, "--tile", "32",
                         "--overlap", "8", "--steps", "1", "--mask", tmp_path / "m.tif", "-q"])
            assert r.exit_code == 0, r.stderr
            fills[name, level] = read(out)[0][:, 20:44, 20:44].astype(np.float64).mean()
    assert fills["repaint", 600] == fills["repaint", 2400]
    for level in (600, 2400):
        assert abs(fills["token", level] - level) < 300, fills


def ramp_fill(tmp_path, size: int, slope: tuple[float, float, float], hole: tuple[slice, slice], *args: str):
    """Inpaint `hole` of a smooth RGB gradient of `size` px with the default model (extra CLI
    `args`); returns the fill's and the truth's hole pixels (float64) and the output's tags."""
    yy, xx = np.mgrid[0:size, 0:size]
    a, b, c = slope
    truth = np.stack([600 + a * xx + 0.4 * a * yy, 900 + b * yy, 1500 - c * xx]).astype(np.uint16)
    write_geotiff(tmp_path / "ramp.tif", truth)
    mask = np.zeros((1, size, size), np.uint8)
    mask[(0, *hole)] = 1
    write_geotiff(tmp_path / "m.tif", mask)
    r = run_cli(["inpaint", tmp_path / "ramp.tif", "--from", "rgb", "--mask", tmp_path / "m.tif", *args,
                 "-o", tmp_path / "out.tif", "-q"])
    assert r.exit_code == 0, r.stderr
    with rasterio.open(tmp_path / "out.tif") as src:
        return src.read()[(slice(None), *hole)].astype(np.float64), truth[(slice(None), *hole)].astype(np.float64), src.tags()


def test_default_model_fills_a_hole_along_its_surroundings_in_one_call(tmp_path, ckpt):
    """The default model (model.context_fill): without --steps, inpaint takes one call (tagged),
    and the fill of a hole in a smooth gradient follows the gradient across it (the harmonic fill
    through the known pixels), far closer than the hole's own mean; a checkpoint without a context
    fill keeps the default of 8 steps."""
    fill, ref, tags = ramp_fill(tmp_path, 64, (25, 15, 12), (slice(20, 44), slice(16, 40)))
    assert tags["EARTHGEN_STEPS"] == "1"
    rmse = np.sqrt(((fill - ref) ** 2).mean((1, 2)))
    flat = ref.std((1, 2))  # RMSE of the hole's own mean
    assert (rmse < 0.25 * flat).all(), (rmse, flat)
    r = run_cli(["inpaint", tmp_path / "ramp.tif", "--from", "rgb", "-m", ckpt, "-o", tmp_path / "r8.tif",
                 "--tile", "32", "--overlap", "8", "--mask", tmp_path / "m.tif", "-q"])
    assert r.exit_code == 0, r.stderr
    with rasterio.open(tmp_path / "r8.tif") as src:
        assert src.tags()["EARTHGEN_STEPS"] == "8"


def road_fill(tmp_path, *args: str):
    """A 3 px bright road running diagonally across a textured field (uint16 RGB, 64 px), a 20 px
    hole over it, inpainted by the default model (extra CLI `args`): the share of the road's
    contrast over the field that the fill keeps on the road's pixels in the hole, and the tags."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    road = np.abs(yy - 0.6 * xx - 12) <= 1.5
    field = np.array([500.0, 700.0, 400.0])[:, None, None] + rng.normal(0, 25, (3, 64, 64))
    img = np.where(road, np.array([1800.0, 1800.0, 1700.0])[:, None, None], field).astype(np.uint16)
    write_geotiff(tmp_path / "road.tif", img)
    hole = np.zeros((64, 64), bool)
    hole[22:42, 20:40] = True
    write_geotiff(tmp_path / "m.tif", hole[None].astype(np.uint8))
    r = run_cli(["inpaint", tmp_path / "road.tif", "--from", "rgb", "--mask", tmp_path / "m.tif", *args,
                 "-o", tmp_path / "out.tif", "--overwrite", "-q"])
    assert r.exit_code == 0, r.stderr
    with rasterio.open(tmp_path / "out.tif") as src:
        out, tags = src.read().astype(np.float64), src.tags()
    off = hole & (np.abs(yy - 0.6 * xx - 12) >= 6)
    on, off_level = out[:, hole & road].mean(1), out[:, off].mean(1)
    return float(((on - off_level) / (img[:, road].mean(1) - field[:, off].mean(1))).mean()), tags


def test_default_model_fill_continues_a_road_across_the_hole(tmp_path):
    """Item 8 of issue 11: with --fill coherence (coherence transport, tagged) a road that crosses
    the hole runs on across it at over half its contrast (0.57 when written); the harmonic fill
    (--fill harmonic) fades it to a smear (0.08); the default, blend, keeps about half (0.28)."""
    kept, tags = road_fill(tmp_path, "--fill", "coherence")
    assert tags["EARTHGEN_FILL"] == "coherence" and kept > 0.45, kept
    harmonic, tags = road_fill(tmp_path, "--fill", "harmonic")
    assert tags["EARTHGEN_FILL"] == "harmonic" and harmonic < 0.2, harmonic
    blend, tags = road_fill(tmp_path)
    assert tags["EARTHGEN_FILL"] == "blend" and harmonic + 0.1 < blend < kept - 0.1, (harmonic, blend, kept)


def test_default_model_fill_spans_tiles_without_seams(tmp_path):
    """A hole much wider than the tiles: each tile holds its fill to the whole scene's on its
    border (multidiffusion.scene_fill), so the fill still follows the gradient across the tiles.
    Without it, tiles wholly inside the hole had no boundary and got no fill (RMSE 4-6x the
    gradient's own spread here), and the others reflected at their own edges (seams)."""
    fill, ref, _ = ramp_fill(tmp_path, 128, (12, 8, 6), (slice(16, 112), slice(24, 104)), "--tile", "32", "--overlap", "8")
    rmse = np.sqrt(((fill - ref) ** 2).mean((1, 2)))
    assert (rmse < 0.15 * ref.std((1, 2))).all(), (rmse, ref.std((1, 2)))


def test_scene_fill_matches_a_direct_solve_and_crops_at_any_scale():
    """scene_fill at full resolution is harmonic_fill of the canvas; solved at 1/s (large scenes)
    its crops still reproduce a linear surface closely."""
    import torch

    from earthgen_cli.inference.multidiffusion import edge_crop, scene_fill
    from earthgen_cli.models.earthgen import harmonic_fill

    yy, xx = np.mgrid[0:60, 0:70].astype(np.float32)
    lat = np.stack([2 * xx - yy, 0.5 * yy + 3])
    keep = np.ones((60, 70), np.float32)
    keep[10:50, 15:60] = 0
    full, s = scene_fill(lat, keep, rows=7)
    assert s == 1
    want = harmonic_fill(torch.from_numpy(lat * keep)[None], torch.from_numpy(keep)[None, None])
    torch.testing.assert_close(full, want, rtol=0, atol=1e-4)
    assert torch.equal(edge_crop(full, 1, 5, 9, 16, 16), full[0, :, 5:21, 9:25])
    coarse, s = scene_fill(lat, keep, side=16, rows=3)
    assert s == 5 and coarse.shape[-2:] == (12, 14)
    crop = edge_crop(coarse, s, 20, 30, 16, 16).numpy()
    assert crop.shape == (2, 16, 16)
    assert np.abs(crop - lat[:, 20:36, 30:46]).max() < 0.1 * np.abs(lat).max()


def test_condition_outside_the_scene_is_refused(ckpt, scene, tmp_path):
    rgb, mask, _ = scene
    far = write_geotiff(tmp_path / "far.tif", np.zeros((2, 32, 32), np.float32))  # 500 km away
    r = inpaint(ckpt, rgb, tmp_path / "o.tif", "--mask", mask, "--cond", f"sar={far}")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "does not overlap" in lines[0], r.stderr
    assert not (tmp_path / "o.tif").exists() and not list(tmp_path.glob(".earthgen-*"))


def test_renoising_takes_a_path_point_to_a_later_time():
    """RePaint's step back (multidiffusion._renoise): from x_s = (1-s) x0 + s eps, the result has
    mean (1-t) x0 and noise of standard deviation t, as a point of the same path at t would."""
    from earthgen_cli.inference.multidiffusion import _renoise
    from earthgen_cli.inference.noise import NoiseField

    rng = np.random.default_rng(0)
    x0 = np.full((4, 128, 128), 2.0, np.float32)
    s, t = 0.3, 0.7
    x = ((1 - s) * x0 + s * rng.standard_normal(x0.shape)).astype(np.float32)
    _renoise(x, s, t, NoiseField(5, 4, 123))
    assert abs(float(x.mean()) - (1 - t) * 2.0) < 0.01
    assert abs(float(x.std()) - t) < 0.01


def test_resample_keeps_the_known_pixels_and_is_recorded(ckpt, scene, tmp_path):
    rgb, mask, _ = scene
    plain, resampled = tmp_path / "plain.tif", tmp_path / "resampled.tif"
    assert inpaint(ckpt, rgb, plain, "--mask", mask).exit_code == 0
    r = inpaint(ckpt, rgb, resampled, "--mask", mask, "--resample", "3")
    assert r.exit_code == 0, r.stderr
    (a, _), (p, _), (b, _) = read(rgb), read(plain), read(resampled)
    m = read(mask)[0][0] > 0
    np.testing.assert_array_equal(b[:, ~m], a[:, ~m])
    assert (b[:, m] != p[:, m]).mean() > 0.9  # the fill is sampled differently
    with rasterio.open(resampled) as src:
        assert src.tags()["EARTHGEN_RESAMPLE"] == "3"
    bad = inpaint(ckpt, rgb, tmp_path / "x.tif", "--mask", mask, "--resample", "0")
    assert bad.exit_code == 2 and "--resample" in bad.stderr and not (tmp_path / "x.tif").exists()

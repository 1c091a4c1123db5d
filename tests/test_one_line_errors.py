"""One-line errors everywhere (issue 12): the CLI boundary turns file-system, GDAL and other
library errors into one stderr line naming the file; --debug / EARTHGEN_DEBUG=1 shows the
traceback; GDAL messages and NotGeoreferencedWarning do not reach stderr before earthgen's line.
Every case: non-zero exit, one line, no traceback, nothing left behind, the input untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_geotiff
from scene_fixtures import run_cli
from test_outputs import snapshot
from test_translate import assert_one_line_error
from train_fixtures import TINY, chips16  # noqa: F401  (fixture)


@pytest.fixture
def truncated(tmp_path):
    full = write_geotiff(tmp_path / "full.tif",
                         np.random.default_rng(0).integers(0, 60000, (3, 128, 128)).astype(np.uint16))
    data = full.read_bytes()
    full.unlink()
    (tmp_path / "trunc.tif").write_bytes(data[: len(data) // 2])
    return tmp_path / "trunc.tif"


def translate(src, out, *extra):
    return ["translate", src, "--from", "rgb", "--to", "rgb", "--model", "identity", "-q", "-o", out, *extra]


def test_corrupt_tiles_of_a_truncated_geotiff(truncated, tmp_path):
    before = snapshot(tmp_path)
    r = run_cli(translate(truncated, tmp_path / "o.tif"))
    assert r.exit_code == 2
    assert_one_line_error(r, str(truncated), "cannot read pixels", "TIFFReadEncodedTile")
    assert snapshot(tmp_path) == before


def run_earthgen(*args, env=None):
    return subprocess.run([sys.executable, "-m", "earthgen_cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_debug_shows_the_traceback(truncated, tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHGEN_DEBUG", "1")
    r = run_cli(translate(truncated, tmp_path / "o.tif"))
    assert r.exit_code == 2 and "Traceback" in r.stderr
    monkeypatch.delenv("EARTHGEN_DEBUG")
    r = run_earthgen(*translate(truncated, tmp_path / "o.tif"), "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("earthgen: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trunc.tif"]


def test_gdal_messages_and_not_georeferenced_warning_stay_off_stderr(tmp_path):
    src = write_geotiff(tmp_path / "plain.tif", np.ones((3, 32, 32), np.uint16), crs=None, transform=None)
    r = run_earthgen(*translate(src, tmp_path / "o.tif", "--allow-no-crs"))
    assert r.returncode == 0 and r.stderr == ""
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 60)  # a TIFF header and nothing GDAL can use
    r = run_earthgen(*translate(bad, tmp_path / "p.tif"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"earthgen: error: {bad}: ")


def test_os_error_at_the_boundary_names_the_file(tmp_path, monkeypatch):
    from earthgen_cli.inference import scene_translate

    src = write_geotiff(tmp_path / "in.tif", np.ones((3, 16, 16), np.uint16))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "o.tif"))

    monkeypatch.setattr(scene_translate, "_run_stripes", denied)
    r = run_cli(translate(src, tmp_path / "o.tif"))
    assert r.exit_code == 1
    assert_one_line_error(r, f"{tmp_path / 'o.tif'}: Permission denied")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_unexpected_error_is_one_line_with_the_debug_hint(tmp_path, monkeypatch):
    from earthgen_cli.inference import scene_translate

    src = write_geotiff(tmp_path / "in.tif", np.ones((3, 16, 16), np.uint16))
    monkeypatch.setattr(scene_translate, "_run_stripes", lambda *a, **k: {}["boom"])
    r = run_cli(translate(src, tmp_path / "o.tif"))
    assert r.exit_code == 1
    assert_one_line_error(r, "unexpected KeyError", "EARTHGEN_DEBUG=1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_geojson_with_an_invalid_geometry(tmp_path):
    like = write_geotiff(tmp_path / "like.tif", np.ones((3, 16, 16), np.uint8))
    src = tmp_path / "roads.geojson"
    src.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"building": "yes"},
         "geometry": {"type": "Polygon", "coordinates": [[[500000, 4649700], [500100]]]}}]}))
    before = snapshot(tmp_path)
    assert_one_line_error(run_cli(["render-osm", src, "--like", like, "-o", tmp_path / "o.tif"]),
                          str(src), "feature 0 has an invalid geometry")
    assert snapshot(tmp_path) == before


def test_render_osm_of_a_folder_says_it_is_a_folder(tmp_path):
    like = write_geotiff(tmp_path / "like.tif", np.ones((3, 16, 16), np.uint8))
    (tmp_path / "osm").mkdir()
    assert_one_line_error(run_cli(["render-osm", tmp_path / "osm", "--like", like, "-o", tmp_path / "o.tif"]),
                          str(tmp_path / "osm"), "is a folder")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_config_values_are_refused(value):
    """optim.lr=nan passed every `lr <= 0` check: strict configs refuse non-finite floats."""
    from dataclasses import dataclass

    import yaml

    from earthgen_cli.errors import EarthgenError
    from earthgen_cli.strict_config import from_mapping

    @dataclass(frozen=True)
    class Optim:
        lr: float = 1e-3

    with pytest.raises(EarthgenError, match="optim.lr must be a finite number"):
        from_mapping(Optim, {"lr": yaml.safe_load(value)}, "cfg.yaml", prefix="optim.")


RAW_VRT = """<VRTDataset rasterXSize="4" rasterYSize="4">
  <SRS>EPSG:32633</SRS><GeoTransform>500000, 10, 0, 4600000, 0, -10</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">
    <SourceFilename relativetoVRT="1">secret.txt</SourceFilename>
    <ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>4</LineOffset>
  </VRTRasterBand>
</VRTDataset>"""


def test_vrt_raw_band_and_python_pixel_functions_are_refused(tmp_path, monkeypatch):
    """A VRTRawRasterBand copied any local file into the output (GDAL's own switch does not stop it
    in the bundled GDAL 3.10): refused, also when nested in another VRT, unless the user opts in."""
    (tmp_path / "secret.txt").write_text("top secret line\n")
    raw = tmp_path / "raw.vrt"
    raw.write_text(RAW_VRT)
    outer = tmp_path / "outer.vrt"
    outer.write_text(RAW_VRT.replace('subClass="VRTRawRasterBand"', "").replace(
        "<SourceFilename relativetoVRT=\"1\">secret.txt", "<SimpleSource><SourceFilename relativeToVRT=\"1\">raw.vrt")
        .replace("<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>4</LineOffset>",
                 "<SourceBand>1</SourceBand></SimpleSource>"))
    python = tmp_path / "py.vrt"
    python.write_text(RAW_VRT.replace('subClass="VRTRawRasterBand"', 'subClass="VRTDerivedRasterBand"').replace(
        "<ImageOffset>", "<PixelFunctionType>f</PixelFunctionType><PixelFunctionLanguage>Python"
                         "</PixelFunctionLanguage><ImageOffset>"))
    monkeypatch.delenv("EARTHGEN_ALLOW_VRT_RAW", raising=False)
    before = snapshot(tmp_path)
    for src, message in ((raw, "VRTRawRasterBand"), (outer, "VRTRawRasterBand"), (python, "Python pixel function")):
        out = tmp_path / "o.tif"
        r = run_cli(["translate", src, "--from", "pan", "--to", "pan", "--model", "identity", "-q", "-o", out])
        assert r.exit_code == 2
        assert_one_line_error(r, str(src), message)
        assert snapshot(tmp_path) == before
    monkeypatch.setenv("EARTHGEN_ALLOW_VRT_RAW", "1")
    r = run_cli(["translate", raw, "--from", "pan", "--to", "pan", "--model", "identity", "-q", "-o", tmp_path / "o.tif"])
    assert r.exit_code == 0, r.stderr


def _huge_vrt(tmp_path, side: int, dtype: str = "Byte", bands: int = 3):
    small = write_geotiff(tmp_path / "small.tif", np.ones((bands, 16, 16), np.uint8))
    band = ("<VRTRasterBand dataType=\"{d}\" band=\"{b}\"><SimpleSource><SourceFilename relativeToVRT=\"1\">small.tif"
            "</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>")
    vrt = tmp_path / "huge.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="{side}" rasterYSize="{side}"><SRS>EPSG:32633</SRS>'
                   f"<GeoTransform>500000, 10, 0, 4600000, 0, -10</GeoTransform>"
                   + "".join(band.format(d=dtype, b=b + 1) for b in range(bands)) + "</VRTDataset>")
    return vrt


def test_huge_outputs_are_refused_before_any_work(tmp_path):
    """A VRT declaring 10^6 x 10^6 pixels started and grew a multi-GB temp file: every scene command
    refuses it up front (--max-pixels), and an output that cannot fit the free space of its folder."""
    vrt = _huge_vrt(tmp_path, 1_000_000)
    before = snapshot(tmp_path)
    out = tmp_path / "o.tif"
    for args in (["translate", vrt, "--from", "rgb", "--to", "pan", "--model", "luminance", "-q", "-o", out],
                 ["render-osm", tmp_path / "x.geojson", "--like", vrt, "-o", out],
                 ["inpaint", vrt, "--from", "rgb", "--mask", "nodata", "-q", "-o", out],
                 ["extend", vrt, "--from", "rgb", "--by", "16", "-q", "-o", out]):
        (tmp_path / "x.geojson").write_text('{"type": "FeatureCollection", "features": []}')
        assert_one_line_error(run_cli(args), str(out), "exceeds --max-pixels 4,000,000,000")
        (tmp_path / "x.geojson").unlink()
        assert snapshot(tmp_path) == before
    # below the pixel limit but beyond any disk here: 3 x 1e11 float64 values
    vrt = _huge_vrt(tmp_path, 316_228, "Float64")
    before = snapshot(tmp_path)
    r = run_cli(["translate", vrt, "--from", "rgb", "--to", "rgb", "--model", "identity", "-q", "-o", out,
                 "--max-pixels", str(10**12)])
    assert_one_line_error(r, str(out), "uncompressed) and", "GB free")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage, message", [
    ("garbage", "unreadable chips table (no column 'id')"),
    ("row", "outside the arrays'"),
    ("modality", "unknown modality 'xband'"),
])
def test_a_damaged_chip_table_is_one_line_error(chips16, tmp_path, damage, message):
    """A hand-edited or damaged dataset: caught when it is opened (info, train, evaluate all open it
    the same way), not as an IndexError or KeyError deep in training."""
    import csv
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(chips16, ds)
    if damage == "garbage":
        (ds / "chips.csv").write_text("a,b,c\n1,2\n")
    elif damage == "row":
        rows = list(csv.reader(open(ds / "chips.csv", newline="")))
        rows[1][rows[0].index("row")] = "99999999"
        with open(ds / "chips.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    else:
        meta = json.loads((ds / "dataset.json").read_text())
        meta["modalities"]["xband"] = meta["modalities"].pop("rgb")
        (ds / "dataset.json").write_text(json.dumps(meta))
    before = snapshot(tmp_path)
    assert_one_line_error(run_cli(["info", ds]), str(ds), message)
    r = run_earthgen("train", "--config", TINY, "--set", f"data.root={ds}", "--set", f"run.out_dir={tmp_path / 'run'}")
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("edit, message", [
    ({"hidden": 6 * 10**8}, "hidden 600000000 is outside"),   # would allocate petabytes
    ({"gen_depth": 10**7}, "gen_depth 10000000 is outside"),
    ({"hidden": 768}, "declares a model of"),                # possible, but not what the file holds
    ({"gen_depth": 3}, "declares a model of"),
])
def test_a_checkpoint_declaring_an_impossible_size(tmp_path, edit, message):
    """A damaged config.json is refused from the JSON and the safetensors header alone, before
    any weight is allocated (the model is first built on the meta device)."""
    import shutil

    from earthgen_cli.inference.default_model import default_model_dir

    model = tmp_path / "damaged"
    shutil.copytree(default_model_dir(), model)
    config = json.loads((model / "config.json").read_text())
    config["model"].update(edit)
    (model / "config.json").write_text(json.dumps(config))
    src = write_geotiff(tmp_path / "in.tif", np.ones((3, 16, 16), np.uint16))
    out = tmp_path / "out.tif"
    r = run_cli(["translate", src, "--from", "rgb", "--to", "nir", "--model", model, "-q", "-o", out])
    assert_one_line_error(r, str(model / "config.json"), message)
    assert not out.exists()

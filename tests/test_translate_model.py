"""`earthgen translate --model CKPT` through the real scene engine with a real (random-weight) checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from earthgen_cli.cli.app import app
from test_checkpoint import _save


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "step_000012"
    _save(path)
    (path / "ema.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    return path


def _translate(src, out, ckpt, *extra):
    return CliRunner().invoke(app, ["translate", str(src), "--from", "sar", "--to", "rgb", "--model", str(ckpt),
                                    "-o", str(out), "--tile", "32", "--overlap", "8", "--device", "cpu", "-q",
                                    *extra])


def test_scene_translation_is_deterministic_and_batch_independent(tmp_path, geotiff, ckpt):
    rng = np.random.default_rng(0)
    src = geotiff("sar.tif", rng.uniform(-25, 0, (2, 70, 90)).astype(np.float32), nodata=-9999.0)
    runs = {}
    for bs in ("1", "3", "8"):
        out = tmp_path / f"out_{bs}.tif"
        res = _translate(src, out, ckpt, "--batch-size", bs, "--seed", "5")
        assert res.exit_code == 0, res.stderr
        with rasterio.open(out) as ds:
            runs[bs] = ds.read()
            assert ds.count == 3 and (ds.height, ds.width) == (70, 90) and ds.crs.to_epsg() == 32633
            assert ds.tags()["EARTHGEN_MODEL"] == str(ckpt)
    assert np.array_equal(runs["1"], runs["3"]) and np.array_equal(runs["1"], runs["8"])
    other = tmp_path / "seed6.tif"
    assert _translate(src, other, ckpt, "--seed", "6").exit_code == 0
    with rasterio.open(other) as ds:
        assert not np.array_equal(ds.read(), runs["1"])


def test_target_the_checkpoint_never_saw(tmp_path, geotiff, ckpt):
    src = geotiff("sar.tif", np.zeros((2, 32, 32), np.float32))
    out = tmp_path / "nir.tif"
    res = CliRunner().invoke(app, ["translate", str(src), "--from", "sar", "--to", "nir", "--model", str(ckpt),
                                   "-o", str(out), "--tile", "32", "--overlap", "8", "-q"])
    assert res.exit_code == 2 and "never saw modality nir" in res.stderr and res.stderr.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_confidence_raster_and_info_of_the_checkpoint(tmp_path, geotiff, ckpt):
    rng = np.random.default_rng(1)
    src = geotiff("sar.tif", rng.uniform(-25, 0, (2, 48, 56)).astype(np.float32), nodata=-9999.0)
    out, conf = tmp_path / "rgb.tif", tmp_path / "conf.tif"
    res = _translate(src, out, ckpt, "--confidence", str(conf), "--steps", "2", "--sampler", "heun")
    assert res.exit_code == 0, res.stderr
    with rasterio.open(out) as a, rasterio.open(conf) as c:
        assert c.count == 1 and c.dtypes[0] == "float32" and c.transform == a.transform and c.crs == a.crs
        values = c.read(1)
        assert np.all((values > 0) & (values <= 1))
        assert c.tags()["EARTHGEN_CONFIDENCE_OF"] == "rgb" and a.tags()["EARTHGEN_STEPS"] == "2"
    info = CliRunner().invoke(app, ["info", str(ckpt)])
    assert info.exit_code == 0, info.stderr
    assert "rgb" in info.stdout and "sar" in info.stdout

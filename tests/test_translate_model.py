"""`earthgen translate --model CKPT` through the real scene engine with a real (random-weight) checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from earthgen_cli.cli.app import app
from earthgen_cli.io.identity import directory_identity
from generate_fixtures import assert_same_up_to_rounding
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


def test_scene_translation_is_deterministic_per_batch_size(tmp_path, geotiff, ckpt):
    rng = np.random.default_rng(0)
    src = geotiff("sar.tif", rng.uniform(-25, 0, (2, 70, 90)).astype(np.float32), nodata=-9999.0)
    runs = {}
    for name, bs in (("3", "3"), ("3again", "3"), ("1", "1"), ("8", "8")):
        out = tmp_path / f"out_{name}.tif"
        res = _translate(src, out, ckpt, "--batch-size", bs, "--seed", "5")
        assert res.exit_code == 0, res.stderr
        with rasterio.open(out) as ds:
            runs[name] = ds.read()
            assert ds.count == 3 and (ds.height, ds.width) == (70, 90) and ds.crs.to_epsg() == 32633
            assert ds.tags()["EARTHGEN_MODEL"] == f"step_000012@{directory_identity(ckpt)['sha256']}"
    np.testing.assert_array_equal(runs["3"], runs["3again"])  # one batch size: bit for bit
    # another batch size is the same computation in other BLAS blocks: float rounding only
    assert_same_up_to_rounding(runs["3"], runs["1"])
    assert_same_up_to_rounding(runs["3"], runs["8"])
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


@pytest.mark.parametrize("given, per_call", [(["--batch-size", "16"], 16), ([], 4)])  # 4: the CPU default
def test_batch_size_is_the_models_batch(tmp_path, geotiff, ckpt, forward_batches, given, per_call):
    src = geotiff("sar.tif", np.zeros((2, 104, 104), np.float32))  # tile 32, step 24: 4 x 4 = 16 tiles
    res = _translate(src, tmp_path / "o.tif", ckpt, "--steps", "2", "--json", *given)
    assert res.exit_code == 0, res.stderr
    tiles = json.loads(res.stdout)["tiles"]
    assert tiles == 16
    assert forward_batches == [per_call] * (2 * tiles // per_call)  # 2 steps, every call full


def test_info_of_a_checkpoint_as_json(ckpt):
    res = CliRunner().invoke(app, ["info", str(ckpt), "--json"])
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["modalities"] == {"rgb": 3, "sar": 2} and info["step"] == 12 and info["tile_multiple"] == 2
    assert info["model"] == f"step_000012@{directory_identity(ckpt)['sha256']}" and info["parameters"]["total"] > 0

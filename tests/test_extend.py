"""earthgen extend: the new grid extends the old one exactly, original pixels bit-for-bit unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from generate_fixtures import assert_same_up_to_rounding, kl_checkpoint, random_checkpoint
from scene_fixtures import BEN_MM, run_cli


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rand") / "ck")


def extend(ckpt, src, out, *extra):
    return run_cli(["extend", src, "--from", "rgb", "-m", ckpt, "-o", out, "--tile", "32", "--overlap", "8",
                    "--steps", "3", "-q", *extra])


def read(path):
    with rasterio.open(path) as src:
        return src.read(), src.profile


@pytest.mark.parametrize("sides, top, left, size", [("all", 12, 12, (144, 144)), ("east,south", 0, 0, (132, 132)),
                                                     ("north", 12, 0, (132, 120))])
def test_grid_extends_exactly_and_original_pixels_unchanged(ckpt, shared_data, tmp_path, sides, top, left, size):
    src = shared_data / BEN_MM / "s2_rgb.tif"
    r = extend(ckpt, src, tmp_path / "o.tif", "--by", "12", "--side", sides)
    assert r.exit_code == 0, r.stderr
    (a, pa), (b, pb) = read(src), read(tmp_path / "o.tif")
    assert b.shape[1:] == size and b.dtype == a.dtype and pb["crs"] == pa["crs"]
    assert pb["transform"] == pa["transform"] @ Affine.translation(-left, -top)
    inner = b[:, top : top + 120, left : left + 120]
    np.testing.assert_array_equal(inner, a)
    margin = np.ones(size, bool)
    margin[top : top + 120, left : left + 120] = False
    assert b[:, margin].std() > 0


def test_same_seed_same_output(ckpt, shared_data, tmp_path):
    src = shared_data / BEN_MM / "s2_rgb.tif"
    outs = []
    for k, extra in enumerate((["--seed", "5"], ["--seed", "5", "--batch-size", "1"], ["--seed", "6"], ["--seed", "5"])):
        assert extend(ckpt, src, tmp_path / f"{k}.tif", "--by", "8", *extra).exit_code == 0
        outs.append(read(tmp_path / f"{k}.tif")[0])
    np.testing.assert_array_equal(outs[0], outs[3])
    assert_same_up_to_rounding(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize("args, message", [(["--by", "0"], "--by"), (["--by", "8", "--side", "up"], "--side"),
                                           (["--by", "100000"], "--by")])
def test_bad_input_one_line_nothing_written(ckpt, shared_data, tmp_path, args, message):
    r = extend(ckpt, shared_data / BEN_MM / "s2_rgb.tif", tmp_path / "o.tif", *args)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "o.tif").exists()


def test_kl_codec_model_keeps_original_pixels(shared_data, tmp_path):
    ck = kl_checkpoint(tmp_path / "kl")
    src = shared_data / BEN_MM / "s2_rgb.tif"
    r = extend(ck, src, tmp_path / "o.tif", "--by", "8", "--side", "west")
    assert r.exit_code == 0, r.stderr
    a, b = read(src)[0], read(tmp_path / "o.tif")[0]
    assert b.shape == (3, 120, 128)
    np.testing.assert_array_equal(b[:, :, 8:], a)

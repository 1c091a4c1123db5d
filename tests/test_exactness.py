"""Exactness the README promises (issue 12): `--model identity` copies a scene bit for bit through
any tiling with overlap, for every integer dtype (64-bit too) and float32/float64, with nodata
per band; complex input and non-finite float options are refused.

The round trip is property-based (hypothesis): scene size, tile, overlap, stripe split, dtype,
nodata and values (over the whole range of the dtype, its extremes included) are drawn.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_geotiff
from earthgen_cli.inference import scene_translate
from earthgen_cli.inference.translator import IdentityTranslator
from scene_fixtures import run_cli
from test_translate import assert_one_line_error

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64"]


def random_values(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Values over the whole range of `dtype`: its extremes, and for floats every exponent (float64:
    magnitudes 2**-900 .. 2**900, see stripe_blend.exact_parts), signs and full mantissas."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
        out.flat[: 2] = [info.min, info.max]
        return out
    if dt == np.float32:
        bits = rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)
        out = bits.view(np.float32)
        return np.where(np.isfinite(out), out, np.float32(1.5)).astype(np.float32)
    mantissa = rng.integers(0, 2**52, shape, dtype=np.uint64)
    exponent = rng.integers(1023 - 900, 1023 + 900, shape, dtype=np.uint64)
    sign = rng.integers(0, 2, shape, dtype=np.uint64)
    return ((sign << np.uint64(63)) | (exponent << np.uint64(52)) | mantissa).view(np.float64)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(DTYPES), height=st.integers(1, 70), width=st.integers(1, 70),
       tile=st.sampled_from([16, 32, 48]), overlap_frac=st.floats(0, 0.49), bands=st.integers(1, 3),
       nodata_kind=st.sampled_from(["none", "value", "nan"]), seed=st.integers(0, 2**32 - 1),
       stripe=st.sampled_from([16, 32, 1024]))
def test_identity_round_trip_is_bit_exact(tmp_path, dtype, height, width, tile, overlap_frac, bands, nodata_kind,
                                          seed, stripe):
    rng = np.random.default_rng(seed)
    data = random_values(rng, dtype, (bands, height, width))
    nodata = None
    if nodata_kind == "nan" and dtype.startswith("float"):
        nodata = float("nan")
    elif nodata_kind != "none":
        nodata = data.flat[rng.integers(data.size)].item()
        if np.dtype(dtype).itemsize == 8 and np.dtype(dtype).kind in "iu":
            nodata = int(nodata) % 2**40  # GDAL keeps a 64-bit integer nodata as a double
        data[data == nodata] = data.flat[0] if data.flat[0] != nodata else data.flat[-1]
    if nodata is not None:  # holes in single bands: the other bands of those pixels stay valid
        holes = rng.random(data.shape) < 0.1
        data[holes] = nodata
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    src = write_geotiff(folder / "in.tif", data, nodata=nodata)
    out = folder / "out.tif"
    overlap = min(int(tile * overlap_frac), tile // 2 - 1)
    modality = "pan" if bands == 1 else "rgb" if bands == 3 else "sar"
    with mock.patch.object(scene_translate, "STRIPE_WIDTH", stripe), \
            mock.patch.object(scene_translate, "BLOCKSIZE", 16):
        scene_translate.translate_scene([scene_translate.SourceSpec(str(src), modality)], modality,
                                        IdentityTranslator(),
                                        scene_translate.TileOptions(tile=tile, overlap=overlap, batch_size=3),
                                        scene_translate.OutputOptions(str(out)))
    with rasterio.open(out) as dst:
        got = dst.read()
        assert dst.dtypes[0] == dtype
        assert (dst.nodata is None) == (nodata is None) or (nodata is None and dtype.startswith("float"))
    if dtype.startswith("float"):
        assert np.array_equal(np.isnan(got), np.isnan(data))
        same = ~np.isnan(data)
        assert np.array_equal(got[same].view(np.uint8), data[same].view(np.uint8))  # bit for bit (-0.0 too)
    else:
        assert np.array_equal(got, data)


def test_int32_above_two_to_the_24_through_one_tile(tmp_path):
    data = (np.arange(3 * 20 * 20, dtype=np.int64).reshape(3, 20, 20) * 7919 + 2**30 + 1).astype(np.int32)
    src = write_geotiff(tmp_path / "i.tif", data)
    out = tmp_path / "o.tif"
    r = run_cli(["translate", src, "--from", "rgb", "--to", "rgb", "--model", "identity", "-q", "-o", out])
    assert r.exit_code == 0, r.stderr
    with rasterio.open(out) as dst:
        assert np.array_equal(dst.read(), data)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64_bit_integers_above_two_to_the_53_through_overlapping_tiles(tmp_path, dtype):
    values = np.arange(3 * 40 * 40, dtype=np.int64).reshape(3, 40, 40) * 7919 + 2**60 + 1
    data = (values if dtype == "int64" else values.astype(np.uint64) + np.uint64(2**63)).astype(dtype)
    if dtype == "int64":
        data[0] = -data[0]  # negative values through the arithmetic shift
    src = write_geotiff(tmp_path / "i.tif", data)
    out = tmp_path / "o.tif"
    r = run_cli(["translate", src, "--from", "rgb", "--to", "rgb", "--model", "identity", "--tile", "16",
                 "--overlap", "4", "-q", "-o", out])
    assert r.exit_code == 0, r.stderr
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == dtype
        assert np.array_equal(dst.read(), data)


def test_a_real_zero_in_one_band_leaves_the_others(tmp_path):
    data = np.full((3, 20, 20), 100, np.uint16)
    data[2, 5, 5] = 0  # a real 0 in blue (nodata 0): only blue is nodata there
    src = write_geotiff(tmp_path / "i.tif", data, nodata=0)
    out = tmp_path / "o.tif"
    assert run_cli(["translate", src, "--to", "rgb", "--model", "identity", "-q", "-o", out]).exit_code == 0
    with rasterio.open(out) as dst:
        assert np.array_equal(dst.read(), data)


def test_per_dataset_mask_masks_every_band(tmp_path):
    data = np.full((3, 32, 32), 100, np.uint8)
    src = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        write_geotiff(src, data)
        with rasterio.open(src, "r+") as ds:
            mask = np.full((32, 32), 255, np.uint8)
            mask[:4] = 0
            ds.write_mask(mask)
    out = tmp_path / "o.tif"
    r = run_cli(["translate", src, "--from", "rgb", "--to", "rgb", "--model", "identity", "-q", "-o", out])
    assert r.exit_code == 0, r.stderr
    with rasterio.open(out) as dst:
        got = dst.read()
        assert dst.nodata == 0
    assert (got[:, :4] == 0).all() and (got[:, 4:] == 100).all()


def test_complex_input_is_refused(tmp_path):
    data = (np.ones((1, 16, 16)) * (1 + 2j)).astype(np.complex64)
    src = write_geotiff(tmp_path / "c.tif", data)
    out = tmp_path / "o.tif"
    assert_one_line_error(run_cli(["translate", src, "--from", "pan", "--to", "pan", "--model", "identity", "-q",
                                   "-o", out]), str(src), "complex")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_float_options_are_refused(tmp_path, value):
    src = write_geotiff(tmp_path / "i.tif", np.ones((3, 16, 16), np.uint16))
    out = tmp_path / "o.tif"
    r = run_cli(["translate", src, "--to", "rgb", "--model", "identity", "--guidance", value, "-q", "-o", out])
    assert_one_line_error(r, "--guidance", "finite")
    r = run_cli(["joint", "--pair", "rgb,sar", "--bbox", "0,0,1,1", "--gsd", value, "-o", tmp_path / "j"])
    assert_one_line_error(r, "--gsd", "finite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.tif"]

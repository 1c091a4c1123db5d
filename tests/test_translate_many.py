"""`earthgen translate IN... -o OUT_DIR` (issue 14): one output per scene, identical to single-scene
runs, failures per scene, --skip-existing, --from-list, --json, worker processes and a dask cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from conftest import torch_threads, write_geotiff
from earthgen_cli.inference.many import worker_threads
from test_translate import assert_one_line_error
from scene_fixtures import run_cli


def _scenes(tmp_path, n=3):
    rng = np.random.default_rng(1)
    folder = tmp_path / "in"
    folder.mkdir()
    return [write_geotiff(folder / f"s{i}.tif", rng.integers(1, 3000, (3, 40 + 8 * i, 48)).astype(np.uint16))
            for i in range(n)]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "earthgen_cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _read(path):
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.crs


def test_several_inputs_one_output_each_identical_to_single_runs(tmp_path):
    scenes = _scenes(tmp_path)
    bad = tmp_path / "in" / "broken.tif"
    bad.write_text("not a raster\n")
    out = tmp_path / "out"
    r = run_cli(["translate", *scenes, bad, "--from", "rgb", "--to", "pan", "--model", "luminance", "-q", "-o", out])
    assert r.exit_code == 1  # one scene failed; the others are done
    assert r.stderr.strip().splitlines() == [f"earthgen: error: {bad}: not a raster GDAL can read "
                                             f"('{bad}' not recognized as being in a supported file format.)"]
    assert "3 translated, 0 skipped (exist), 1 failed" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["s0.tif", "s1.tif", "s2.tif"]
    for s in scenes:
        assert run_cli(["translate", s, "--from", "rgb", "--to", "pan", "--model", "luminance", "-q",
                        "-o", tmp_path / "single.tif", "--overwrite"]).exit_code == 0
        a, b = _read(out / s.name), _read(tmp_path / "single.tif")
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    # a re-run keeps what exists and redoes only the rest; --from-list adds inputs
    (out / "s1.tif").unlink()
    listing = tmp_path / "list.txt"
    listing.write_text(f"# scenes\n{scenes[1]}\n\n{scenes[2]}\n")
    r = run_cli(["translate", scenes[0], "--from-list", listing, "--from", "rgb", "--to", "pan", "--model",
                 "luminance", "-q", "-o", out, "--skip-existing", "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 2, 0)
    assert [s["status"] for s in summary["scenes"]] == ["skipped", "skipped", "done"]
    # without --skip-existing or --overwrite an existing output is refused before any work
    r = run_cli(["translate", *scenes, "--from", "rgb", "--to", "pan", "--model", "luminance", "-o", out])
    assert_one_line_error(r, "s0.tif: exists", "--skip-existing")


def test_worker_processes_and_a_dask_cluster_give_the_single_run_outputs(shared_data, tmp_path):
    distributed = pytest.importorskip("distributed")
    from scene_fixtures import BEN_MM

    scenes = []
    for i, name in enumerate(["s2_rgb.tif"] * 2):
        data, profile = None, None
        with rasterio.open(shared_data / BEN_MM / name) as src:
            data, profile = src.read(window=((0, 48), (16 * i, 16 * i + 56))), src.profile
            transform = src.window_transform(((0, 48), (16 * i, 16 * i + 56)))
        scenes.append(write_geotiff(tmp_path / f"crop{i}.tif", data, crs=profile["crs"], transform=transform))
    common = ["--to", "nir", "--estimate", "mean", "-q"]
    r = _cli("translate", *scenes, *common, "-o", tmp_path / "procs", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "2 translated" in r.stdout and "on 2 worker(s)" in r.stdout
    # identical given the same torch threads per process (docs/cli.md): each of the 2 workers has
    # worker_threads(2); the dask worker and the single runs below run in this process, so they get as many
    # (with another count the last float bits differ, and a uint16 value can round the other way)
    with torch_threads(worker_threads(2)):
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                      dashboard_address=None) as cluster:
            r = run_cli(["translate", *scenes, *common, "-o", tmp_path / "dask", "--scheduler",
                         cluster.scheduler_address])
        assert r.exit_code == 0, r.stderr
        for s in scenes:
            assert run_cli(["translate", s, *common, "-o", tmp_path / "one.tif", "--overwrite"]).exit_code == 0
            one = _read(tmp_path / "one.tif")
            for folder in ("procs", "dask"):
                got = _read(tmp_path / folder / s.name)
                assert np.array_equal(got[0], one[0]) and got[1:] == one[1:], folder


@pytest.mark.parametrize("extra, message", [
    (["-o", "-"], "-o must be a folder"),
    (["--confidence", "c.tif"], "--confidence applies to one input"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_several_inputs_bad_options_are_one_line_errors(tmp_path, extra, message):
    scenes = _scenes(tmp_path, 2)
    args = ["translate", *scenes, "--from", "rgb", "--to", "pan", "--model", "luminance", *extra]
    if "-o" not in extra:
        args += ["-o", tmp_path / "out"]
    assert_one_line_error(run_cli(args), message)
    assert not (tmp_path / "out").exists()


def test_same_stem_twice_and_single_input_flags(tmp_path):
    a = _scenes(tmp_path, 1)[0]
    other = tmp_path / "other"
    other.mkdir()
    b = write_geotiff(other / a.name, np.ones((3, 16, 16), np.uint16))
    assert_one_line_error(run_cli(["translate", a, b, "--from", "rgb", "--to", "pan", "--model", "luminance",
                                   "-o", tmp_path / "out"]), "also the output of")
    assert_one_line_error(run_cli(["translate", a, "--from", "rgb", "--to", "pan", "--model", "luminance",
                                   "-o", tmp_path / "o.tif", "--skip-existing"]), "apply to several inputs")

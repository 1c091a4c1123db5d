"""The scripts in examples/ run as a user would run them (small mode), and produce what they say."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("earthgen") is None and not Path(sys.executable).with_name("earthgen").exists(),
                       reason="the earthgen command is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("bigearthnet_common") is None,
                       reason="needs the [samples] extra"),
]


def run_example(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, SMALL="1", OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["bash", str(EXAMPLES / name), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("example")
    proc = run_example("train_and_evaluate.sh", str(work))
    return work, proc


def test_train_and_evaluate_example(trained):
    work, proc = trained
    report = (work / "report" / "report.md").read_text()
    assert "sar→rgb" in report and "pixel-regression" in report
    with rasterio.open(work / "rgb_from_sar.tif") as out:
        assert out.count == 3 and out.crs is not None and out.tags()["EARTHGEN_DIRECTION"] == "sar:rgb"
    assert (work / "rgb_from_sar.png").stat().st_size > 0


def test_joint_bbox_example(trained, tmp_path):
    work, _ = trained
    ckpt = sorted((work / "run" / "checkpoints").glob("step_*"))[-1]
    run_example("joint_bbox.sh", str(ckpt), str(tmp_path / "joint"))
    with rasterio.open(tmp_path / "joint" / "rgb.tif") as rgb, rasterio.open(tmp_path / "joint" / "sar.tif") as sar:
        assert rgb.crs == sar.crs and rgb.transform == sar.transform and rgb.res == (10.0, 10.0)
        assert rgb.crs.to_epsg() == 32632  # UTM zone of 11.3 E


def test_inpaint_scene_example(shared_data, tmp_path):
    """Each --fill run writes a composite that keeps every pixel outside the hole, changes the
    hole, and is tagged with its fill; the three fills differ inside the hole."""
    from scene_fixtures import BEN_MM

    scene = shared_data / BEN_MM / "s2_rgb.tif"
    proc = run_example("inpaint_scene.sh", str(scene), str(tmp_path / "i"), "40:64,40:64")
    with rasterio.open(scene) as src:
        ref = src.read()
    holes = {}
    for fill in ("blend", "coherence", "harmonic"):
        assert f"EARTHGEN_FILL={fill}" in proc.stdout
        with rasterio.open(tmp_path / "i" / f"filled_{fill}.tif") as out:
            a = out.read()
        inside = slice(None), slice(40, 64), slice(40, 64)
        keep = ref.copy()
        keep[inside] = a[inside]
        assert (a == keep).all() and (a[inside] != ref[inside]).any()
        holes[fill] = a[inside]
    assert (holes["coherence"] != holes["harmonic"]).any() and (holes["blend"] != holes["harmonic"]).any()


def test_translate_scene_example(trained, tmp_path):
    work, _ = trained
    scene = sorted((work / "samples").glob("S2*"))[0] / "s2_rgb.tif"
    proc = run_example("translate_scene.sh", str(scene), str(tmp_path / "t"))
    assert "EARTHGEN_MODALITY" in proc.stdout
    with rasterio.open(tmp_path / "t" / "pan_cog.tif") as cog:
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and cog.count == 1

"""The model shipped inside the package (earthgen_cli/weights/default) and `earthgen export`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from earthgen_cli.cli.app import app
from earthgen_cli.evaluate.report import MethodScores, Report, write_json
from earthgen_cli.inference.default_model import default_card, default_model_dir, validated_directions
from earthgen_cli.train.checkpoint import read_info
from generate_fixtures import random_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def _rgb(geotiff, size=64):
    rng = np.random.default_rng(0)
    return geotiff("rgb.tif", (rng.random((3, size, size)) * 2500 + 200).astype(np.uint16))


def test_the_default_model_ships_small_with_a_card():
    path = default_model_dir()
    info = read_info(path)
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 50 * 2**20, size
    assert {f.name for f in path.iterdir()} == {"config.json", "ema.safetensors", "card.json"}
    card = default_card()
    assert validated_directions(), "the default model claims no direction"
    for key in validated_directions():  # every claim is backed by a held-out win over the mean image
        row = card["evaluation"]["psnr"][key]
        assert row["unified"] > row["mean"], (key, row)
        assert card["scored_chips"][key] >= card["min_chips"] >= 4
        src, dst = key.split(":")
        assert src in info.model.modalities and dst in info.model.modalities
    assert card["evaluation"]["split"] == "test"


def test_translate_without_model_uses_the_default(geotiff, tmp_path):
    src, out = _rgb(geotiff), tmp_path / "pan.tif"
    result = _run("translate", src, "--to", "pan", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.shape, b.count) == (a.crs, a.transform, a.shape, 1)
        tags = b.tags()
        data = b.read(1)
    assert tags["EARTHGEN_MODEL"] == str(default_model_dir())
    assert data.std() > 0


def test_an_unvalidated_direction_runs_with_a_warning(geotiff, tmp_path):
    card = default_card()
    unvalidated = [k for k in card["evaluation"]["psnr"] if k not in card["validated"] and k.startswith("rgb:")]
    if not unvalidated:
        pytest.skip("every rgb direction of the default model is validated")
    target = unvalidated[0].split(":")[1]
    out = tmp_path / "out.tif"
    result = CliRunner().invoke(app, ["translate", str(_rgb(geotiff)), "--to", target, "-o", str(out),
                                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"not validated for rgb->{target}" in result.stderr
    assert out.is_file()


def test_info_default_lists_what_it_covers():
    result = _run("info", "default")
    assert result.exit_code == 0, result.output
    assert "validated directions" in result.output
    for key in validated_directions():
        assert key.replace(":", " -> ") in result.output


def test_export_half_with_a_card(tmp_path):
    ckpt = random_checkpoint(tmp_path / "ck")
    report = tmp_path / "report.json"
    write_json(Report((MethodScores("rgb:sar", "unified", {"psnr": 20.0}, 4),
                       MethodScores("rgb:sar", "mean", {"psnr": 18.0}, 4),
                       MethodScores("rgb:osm", "unified", {"psnr": 30.0}, 1),  # one chip: no claim
                       MethodScores("rgb:osm", "mean", {"psnr": 18.0}, 1),
                       MethodScores("sar:rgb", "unified", {"psnr": 15.0}, 4),
                       MethodScores("sar:rgb", "mean", {"psnr": 17.0}, 4)),
                      {"steps": 8}, {"split": "test"}, {}), report)
    out = tmp_path / "exported"
    result = _run("export", ckpt, "--half", "--report", report, "-o", out)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "card.json").read_text())
    assert card["validated"] == ["rgb:sar"] and card["evaluation"]["psnr"]["sar:rgb"] == {"unified": 15.0, "mean": 17.0}
    assert (out / "ema.safetensors").stat().st_size < 0.6 * (ckpt / "ema.safetensors").stat().st_size
    from earthgen_cli.train.checkpoint import load_model

    full, _ = load_model(ckpt)
    half, _ = load_model(out)
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items()):
        assert b.dtype == a.dtype and np.allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4), name
    again = _run("export", ckpt, "-o", out)
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.slow
def test_the_wheel_stays_under_60_mb(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(tmp_path), "-q"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("earthgen-*.whl")
    assert wheel.stat().st_size < 60 * 2**20, wheel.stat().st_size
    names = zipfile.ZipFile(wheel).namelist()
    assert "earthgen_cli/weights/default/ema.safetensors" in names  # the default model ships in it

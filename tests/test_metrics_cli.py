"""`earthgen evaluate` through the real CLI on a dataset built from real BigEarthNet scenes:
the report folder read back, and bad input as one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from earthgen_cli.cli.app import app
from earthgen_cli.evaluate.report import read_report

CONFIG = """root: {root}
sources:
  - name: bigearthnet_mm
    scenes: bigearthnet_mm/*
    modalities:
      rgb: {{file: s2_rgb.tif}}
      nir: {{file: s2_nir.tif}}
      sar: {{file: s1_vvvh_db.tif, units: db}}
"""


@pytest.fixture(scope="module")
def dataset(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate-cli")
    (folder / "bm.yaml").write_text(CONFIG.format(root=shared_data))
    result = CliRunner().invoke(app, ["build-dataset", str(folder / "ds"), "-c", str(folder / "bm.yaml"),
                                      "--chip", "40", "--split-by", "scene", "--val-frac", "0",
                                      "--test-frac", "0.34", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "ds"


def _evaluate(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def test_evaluate_writes_a_report_with_every_baseline(dataset, tmp_path):
    out = tmp_path / "report"
    result = _evaluate("--data", dataset, "-o", out, "--directions", "sar:rgb,rgb:nir", "--no-fid",
                       "--max-chips", "4", "--unet-steps", "3", "--cas-steps", "3", "--batch-size", "4", "--quiet")
    assert result.exit_code == 0, result.output
    report = read_report(out / "report.json")
    methods = {(r.direction, r.method) for r in report.results}
    assert methods == {(d, m) for d in ("sar:rgb", "rgb:nir") for m in ("mean", "pixel-regression", "pairwise-unet",
                                                                               "real pairs")}
    assert all(r.n_images == 4 for r in report.results)
    assert report.data["split"] == "test" and report.data["pairs"]["sar:rgb"] > 0
    assert all(-100 <= r.metrics["cas"] <= 100 for r in report.results)
    assert report.config["cas_steps"] == 3
    md = (out / "report.md").read_text()
    assert "| pairwise-unet |" in md and "sar→rgb PSNR↑" in md
    assert (out / "grid.png").stat().st_size > 0
    again = _evaluate("--data", dataset, "-o", out, "--directions", "rgb:nir", "--no-fid")
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.parametrize("args, message", [
    (["--directions", "sar-rgb"], "write SOURCE:TARGET"),
    (["--directions", "rgb:pan"], "needs pan, which the dataset does not hold"),
    (["--directions", "rgb:nir", "--split", "val"], "split val has no chip holding both rgb and nir"),
    (["--directions", "rgb:nir", "--model", "luminance"], "maps rgb -> pan only"),
    (["--directions", "rgb:nir", "--cas", "/nonexistent/cas"], "not a CAS encoder"),
])
def test_bad_input_is_one_line_and_exit_2(dataset, tmp_path, args, message):
    result = _evaluate("--data", dataset, "-o", tmp_path / "r", "--no-fid", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("earthgen: error:") and message in lines[0], result.output


def test_without_a_cas_encoder_cas_is_left_out_with_a_warning(dataset, tmp_path):
    out = tmp_path / "r"
    result = _evaluate("--data", dataset, "-o", out, "--directions", "rgb:nir", "--no-fid",
                       "--baselines", "mean", "--max-chips", "2")
    assert result.exit_code == 0, result.output
    assert "warning: CAS left out for rgb:nir" in result.output
    assert "cas" not in read_report(out / "report.json").results[0].metrics
    json.loads((out / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))

"""`earthgen evaluate` through the real CLI on a dataset built from real BigEarthNet scenes:
the report folder read back, and bad input as one-line errors (exit 2)."""

from __future__ import annotations

import csv
import json

import numpy as np
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
    assert methods == {(d, m) for d in ("sar:rgb", "rgb:nir") for m in ("oracle-mean", "mean", "pixel-regression",
                                                                               "pairwise-unet", "real pairs")}
    assert all(r.n_images == 4 for r in report.results)
    assert report.data["split"] == "test" and report.data["pairs"]["sar:rgb"] > 0
    assert all(-100 <= r.metrics["cas"] <= 100 for r in report.results)
    assert report.config["cas_steps"] == 3
    md = (out / "report.md").read_text()
    assert "| pairwise-unet |" in md and "sar→rgb PSNR (ref range)↑" in md and "## Claims by direction" in md
    assert (out / "grid.png").stat().st_size > 0
    # chips.csv: every scored chip's PSNR and corr per method, and they average to the report's numbers
    with open(out / "chips.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["direction", "method", "chip", "scene", "psnr", "corr"]
    for r in report.results:
        if "psnr" not in r.metrics:  # real pairs: CAS only
            continue
        mine = [c for c in rows if (c["direction"], c["method"]) == (r.direction, r.method)]
        assert len(mine) == r.n_images == len({c["chip"] for c in mine}), (r.direction, r.method)
        assert all(c["chip"].startswith(c["scene"] + "/") for c in mine)  # the dataset's chip ids
        for metric in ("psnr", "corr"):
            assert abs(np.mean([float(c[metric]) for c in mine]) - r.metrics[metric]) < 1e-3, (r.method, metric)
    again = _evaluate("--data", dataset, "-o", out, "--directions", "rgb:nir", "--no-fid")
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.parametrize("args, message", [
    (["--directions", "sar-rgb"], "write SOURCE:TARGET"),
    (["--directions", "rgb:pan"], "needs pan, which the dataset does not hold"),
    (["--directions", "rgb:nir", "--split", "val"], "split val has no chip holding both rgb and nir"),
    (["--directions", "rgb:nir", "--model", "luminance"], "maps rgb -> pan only"),
    (["--directions", "rgb:nir", "--cas", "/nonexistent/cas"], "/nonexistent/cas: no such directory"),
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


# -- U-Nets and CAS encoders trained by `earthgen train`, loaded by `earthgen evaluate` --------------

from pathlib import Path  # noqa: E402

from earthgen_cli.evaluate.pair_source import chip_indices  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _train(*args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def unet_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("unet-run") / "run"
    result = _train("--config", CONFIGS / "pairwise-unet.yaml", "--set", f"data.root={dataset}",
                    "--set", "optim.steps=3", "--set", "optim.batch_size=4", "--set", "unet.directions=[sar:rgb]",
                    "--set", f"run.out_dir={run}")
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def cas_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("cas-run") / "run"
    result = _train("--config", CONFIGS / "cas.yaml", "--set", f"data.root={dataset}", "--set", "optim.steps=3",
                    "--set", "optim.batch_size=8", "--set", "cas.pairs=[sar+rgb]", "--set", f"run.out_dir={run}")
    assert result.exit_code == 0, result.output
    return run


def test_train_stage_unet_writes_one_model_per_direction(unet_run):
    assert sorted(p.name for p in unet_run.iterdir() if p.is_dir()) == ["unet_sar_rgb"]
    meta = json.loads((unet_run / "unet_sar_rgb" / "config.json").read_text())
    assert meta["format"] == "earthgen-pairwise-unet" and (meta["source"], meta["target"]) == ("sar", "rgb")
    assert set(meta["scaling"]) == {"sar", "rgb"} and meta["steps"] == 3
    log = [json.loads(line) for line in (unet_run / "log.jsonl").read_text().splitlines()]
    assert [r["item"] for r in log] == ["sar:rgb"] and log[0]["chips"] > 0


def test_evaluate_loads_trained_unets_and_cas_encoders(dataset, unet_run, cas_run, tmp_path):
    out = tmp_path / "r"
    result = _evaluate("--data", dataset, "-o", out, "--directions", "sar:rgb,rgb:nir", "--no-fid",
                       "--baselines", "mean,pairwise-unet", "--unet", unet_run, "--cas", cas_run, "--max-chips", "3")
    assert result.exit_code == 0, result.output
    report = read_report(out / "report.json")
    rows = {(r.direction, r.method): r.metrics for r in report.results}
    assert ("sar:rgb", "pairwise-unet") in rows and ("rgb:nir", "pairwise-unet") not in rows
    assert "pairwise-unet left out for rgb:nir" in result.output
    assert "cas" in rows[("sar:rgb", "mean")] and "cas" not in rows[("rgb:nir", "mean")]
    assert report.config["unet"] == [str(unet_run)]


def test_joint_scores_fid_per_modality_and_cas_of_the_pair(dataset, cas_run, tmp_path):
    from generate_fixtures import checkpoint_info, random_checkpoint

    ckpt = random_checkpoint(tmp_path / "ck", checkpoint_info(("rgb", "nir", "sar"), ("rgb+sar", "rgb+nir")))
    out = tmp_path / "r"
    result = _evaluate("--data", dataset, "-o", out, "--model", ckpt, "--directions", "none", "--joint", "sar,rgb",
                       "--cas", cas_run, "--max-chips", "3", "--steps", "2")
    assert result.exit_code == 0, result.output
    report = read_report(out / "report.json")
    rows = {r.method: r for r in report.results}
    assert set(rows) == {"unified", "real pairs", "shuffled pairs"}
    assert all(r.direction == "joint:sar,rgb" and r.n_images == 3 for r in rows.values())
    assert {"fid_sar", "kid_sar", "fid_rgb", "kid_rgb", "cas"} <= set(rows["unified"].metrics)
    assert rows["unified"].metrics["fid_rgb"] > 0
    md = (out / "report.md").read_text()
    assert "joint:sar,rgb FID rgb↓" in md and "joint:sar,rgb CAS↑" in md
    assert report.data["pairs"] == {"joint:sar,rgb": report.data["pairs"]["joint:sar,rgb"]}


@pytest.mark.parametrize("args, message", [
    (["--directions", "none", "--joint", "rgb"], "name two modalities"),
    (["--directions", "none", "--joint", "rgb,sar"], "needs a checkpoint (--model)"),
    (["--directions", "none"], "nothing to evaluate without --joint"),
    (["--directions", "rgb:nir", "--unet", "/nonexistent/unets"], "no such directory"),
])
def test_joint_and_helper_bad_input(dataset, tmp_path, args, message):
    result = _evaluate("--data", dataset, "-o", tmp_path / "r", "--no-fid", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


def test_train_helper_stage_refuses_a_direction_the_data_lacks(dataset, tmp_path):
    result = _train("--config", CONFIGS / "pairwise-unet.yaml", "--set", f"data.root={dataset}",
                    "--set", "unet.directions=[rgb:pan]", "--set", f"run.out_dir={tmp_path / 'run'}")
    assert result.exit_code == 2 and "has no chip holding both rgb and pan" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_max_chips_spread_over_the_split():
    assert chip_indices(98, 8) == [0, 14, 28, 42, 55, 69, 83, 97]
    assert chip_indices(5, None) == chip_indices(5, 9) == [0, 1, 2, 3, 4]
    assert chip_indices(7, 1) == [0]


def test_max_chips_spread_over_the_scenes():
    scenes = ["a"] * 80 + ["b"] * 10 + ["c"] * 5 + ["d"] * 3
    chosen = chip_indices(98, 8, scenes)
    # every scene gets a chip before any gets a second; inside a scene they are spread evenly
    assert chosen == [0, 79, 80, 89, 90, 94, 95, 97]  # 2 each: the first and last of each scene
    assert {scenes[i] for i in chip_indices(98, 4, scenes)} == {"a", "b", "c", "d"}
    assert chip_indices(98, 95, scenes) == sorted(set(chip_indices(98, 95, scenes)))  # no chip twice
    assert len(chip_indices(98, 95, scenes)) == 95 and chip_indices(5, None, list("aabbc")) == [0, 1, 2, 3, 4]


def test_defaults_score_32_chips_a_direction_and_announce_the_work(dataset, tmp_path):
    out = tmp_path / "r"
    result = _evaluate("--data", dataset, "-o", out, "--directions", "rgb:nir,nir:rgb", "--no-fid", "--baselines",
                       "mean")
    assert result.exit_code == 0, result.output
    report = read_report(out / "report.json")
    n = report.data["pairs"]["rgb:nir"]
    assert report.config["max_chips"] == 32 and all(r.n_images == min(n, 32) for r in report.results)
    # the plan comes first, before any direction is scored; then one progress bar per direction
    first = result.stderr.splitlines()[0]
    assert first == (f"scoring 2 direction(s), {2 * min(n, 32)} chips in all (at most 32 per direction, spread "
                     f"over scenes; --max-chips): rgb:nir {min(n, 32)}, nir:rgb {min(n, 32)}")
    # (a bar is drawn when it opens; whether "100%" is drawn before a leave=False bar clears depends
    # on tqdm's refresh interval, i.e. on the machine's speed: not asserted)
    for d in ("rgb:nir", "nir:rgb"):
        assert f"{d}:   0%" in result.stderr and f"0/{min(n, 32)} " in result.stderr, result.stderr
    assert "chip/s" in result.stderr
    quiet = _evaluate("--data", dataset, "-o", tmp_path / "q", "--directions", "rgb:nir", "--no-fid", "--baselines",
                      "mean", "--max-chips", "0", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output
    assert read_report(tmp_path / "q" / "report.json").config["max_chips"] is None


def test_a_unet_folder_given_as_cas_encoder_is_refused(dataset, unet_run, tmp_path):
    result = _evaluate("--data", dataset, "-o", tmp_path / "r", "--no-fid", "--directions", "sar:rgb",
                       "--cas", unet_run / "unet_sar_rgb")
    assert result.exit_code == 2 and "not a CAS encoder" in result.output, result.output

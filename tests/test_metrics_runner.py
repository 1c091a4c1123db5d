"""The evaluation run on real chips: directions parsed and checked, baselines fitted on train and
scored on test, a perfect method scores perfectly end to end, nodata chips left out, outputs
written and read back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.cas import CASConfig, DualEncoder
from earthgen_cli.evaluate.fid import InceptionFeatures, inception_path
from earthgen_cli.evaluate.report import read_report
from earthgen_cli.evaluate.pair_source import Direction, TensorPairs, parse_directions
from earthgen_cli.evaluate.runner import EvaluateOptions, evaluate, translator_method, write_outputs
from earthgen_cli.inference.translator import LuminanceTranslator
from earthgen_cli.modalities import luminance
from earthgen_cli.modalities import default_scaling
from test_baselines import real_scenes


def test_parse_directions():
    assert parse_directions("sar:rgb, rgb:nir") == (Direction("sar", "rgb"), Direction("rgb", "nir"))
    for bad, message in (("sar-rgb", "SOURCE:TARGET"), ("sar:lidar", "unknown modality"),
                         ("rgb:rgb", "itself"), ("sar:rgb,sar:rgb", "twice"), (" , ", "no direction")):
        with pytest.raises(EarthgenError, match=message):
            parse_directions(bad)


@pytest.fixture(scope="module")
def optical(shared_data):
    """Real rgb+nir chips: 10 train, 4 test, with the registry's default scaling."""
    scenes = real_scenes(shared_data, {"rgb": "s2_rgb.tif", "nir": "s2_nir.tif"})
    scaling = {m: default_scaling(m, scenes[m].shape[1]) for m in scenes}
    split = {"train": {m: v[:10] for m, v in scenes.items()}, "test": {m: v[10:] for m, v in scenes.items()}}
    return split, scaling


def test_bad_directions_and_empty_splits_are_one_line_errors(optical):
    images, scaling = optical
    pairs = TensorPairs("real-optical", images, scaling)
    with pytest.raises(EarthgenError, match="needs sar, which the dataset does not hold"):
        evaluate(pairs, EvaluateOptions(parse_directions("sar:rgb"), fid=False))
    with pytest.raises(EarthgenError, match="split val has no chip holding both rgb and nir"):
        evaluate(pairs, EvaluateOptions(parse_directions("rgb:nir"), split="val", fid=False))
    with pytest.raises(EarthgenError, match="unknown baseline"):
        EvaluateOptions(parse_directions("rgb:nir"), baselines=("pix2pixhd",))


def test_baselines_are_fitted_on_train_and_scored_on_test(optical, tmp_path):
    images, scaling = optical
    options = EvaluateOptions(parse_directions("rgb:nir,nir:rgb"), fid=False, batch_size=3, grid_chips=2)
    out = evaluate(TensorPairs("real-optical", images, scaling), options)
    rows = {(r.direction, r.method): r for r in out.results}
    assert set(rows) == {(d, m) for d in ("rgb:nir", "nir:rgb") for m in ("oracle-mean", "mean", "pixel-regression")}
    for r in out.results:
        assert r.n_images == 4 and set(r.metrics) == {"psnr", "psnr_dataset", "corr", "ssim", "rmse", "scc", "fsim"}
        assert all(math.isfinite(v) for v in r.metrics.values())
    # band maths beats the mean image between optical bands (RMSE on 0-255, PSNR in dB)
    assert rows[("rgb:nir", "pixel-regression")].metrics["rmse"] < rows[("rgb:nir", "mean")].metrics["rmse"]
    assert rows[("rgb:nir", "pixel-regression")].metrics["psnr"] > rows[("rgb:nir", "mean")].metrics["psnr"]
    assert "pairwise-unet left out for rgb:nir, nir:rgb: no trained U-Net" in out.warnings
    assert "CAS left out for rgb:nir, nir:rgb: no CAS encoder for the pair" in out.warnings
    assert [s.columns for s in out.sections] == [("source rgb", "oracle-mean", "mean", "pixel-regression", "target nir"),
                                                 ("source nir", "oracle-mean", "mean", "pixel-regression", "target rgb")]
    assert len(out.sections[0].chips) == 2

    report = write_outputs(tmp_path / "report", out, {"directions": ["rgb:nir", "nir:rgb"], "seed": 0},
                           {"path": "real-optical", "split": "test", "chips": 4}, {})
    back = read_report(tmp_path / "report" / "report.json")
    assert back.results == report.results
    assert set(back.config["direction_seconds"]) == {"rgb:nir", "nir:rgb"}
    assert "| pixel-regression |" in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "grid.png").stat().st_size > 0


def test_a_perfect_translator_scores_perfectly_through_the_whole_pipeline(optical):
    # pan defined as the luminance of the real rgb: the analytic translator is exact, so every
    # metric must reach its ideal value, FID included, while the mean image must not.
    try:
        inception = InceptionFeatures(inception_path())
    except EarthgenError as exc:
        pytest.skip(str(exc))
    images, scaling = optical
    scaling = {"rgb": scaling["rgb"], "pan": default_scaling("pan", 1)}
    pan = {s: scaling["pan"].to_model(torch.from_numpy(
        luminance(scaling["rgb"].from_model(images[s]["rgb"]).numpy())).float()) for s in images}
    data = {s: {"rgb": images[s]["rgb"], "pan": pan[s]} for s in images}
    options = EvaluateOptions(parse_directions("rgb:pan"), baselines=("mean", "luminance"), fid=True)
    cas = {frozenset(("rgb", "pan")): DualEncoder(CASConfig("rgb", "pan", 3, 1, width=8, depth=2, embed_dim=16))}
    out = evaluate(TensorPairs("real-rgb-pan", data, scaling), options, unified=LuminanceTranslator(),
                   cas_encoders=cas, inception=inception)
    rows = {r.method: r.metrics for r in out.results}
    for method in ("unified", "luminance"):
        # exact up to float32 round-off of the raw <-> model-space round trip
        assert rows[method]["psnr"] > 100.0 and rows[method]["rmse"] == pytest.approx(0.0, abs=1e-3)
        assert rows[method]["ssim"] == pytest.approx(1.0, abs=1e-4)
        assert rows[method]["fid"] == pytest.approx(0.0, abs=1e-2)
        assert -100.0 <= rows[method]["cas"] <= 100.0
    assert rows["mean"]["fid"] > 1.0 and rows["mean"]["psnr"] < 40.0
    # the reference row: real target with real source; an exact method reproduces it
    assert rows["real pairs"].keys() == {"cas"}
    assert rows["unified"]["cas"] == pytest.approx(rows["real pairs"]["cas"], abs=1e-3)
    assert not any("CAS left out" in w for w in out.warnings)


def test_chips_with_nodata_are_left_out_and_counted(optical):
    images, scaling = optical
    valid = {"test": {"nir": torch.ones(4, 120, 120, dtype=torch.bool)}}
    valid["test"]["nir"][1, 5, 5] = False
    pairs = TensorPairs("real-optical", images, scaling, valid=valid)
    out = evaluate(pairs, EvaluateOptions(parse_directions("rgb:nir"), baselines=("mean",), fid=False))
    assert out.skipped_chips == {"rgb:nir": 1}
    assert out.results[0].n_images == 3
    assert "chips with nodata left out: rgb:nir 1" in out.warnings
    valid["test"]["nir"][:] = False
    with pytest.raises(EarthgenError, match="free of nodata"):
        evaluate(pairs, EvaluateOptions(parse_directions("rgb:nir"), baselines=("mean",), fid=False))
    assert np.isfinite(out.results[0].metrics["psnr"])


def test_a_direction_the_model_cannot_do_fails_before_any_work(optical):
    images, scaling = optical
    with pytest.raises(EarthgenError, match="luminance maps rgb -> pan only"):
        evaluate(TensorPairs("real-optical", images, scaling),
                 EvaluateOptions(parse_directions("rgb:nir"), fid=False), unified=LuminanceTranslator())


def test_codec_ceiling_scores_the_roundtrip_of_the_real_target(optical):
    # A real lossy codec: 8-bit quantisation of the raw target over its dataset range.
    images, scaling = optical

    def quantise(modality, raw):
        s = scaling[modality]
        return s.from_model(torch.round((s.to_model(raw) + 1) * 127.5) / 127.5 - 1)

    options = EvaluateOptions(parse_directions("rgb:nir"), baselines=("codec-ceiling", "mean"), fid=False)
    out = evaluate(TensorPairs("real-optical", images, scaling), options, codec_roundtrip=quantise)
    rows = {r.method: r.metrics for r in out.results}
    # uniform quantisation error with step 1/255 on the unit scale: RMSE = 255 * (1/255) / sqrt(12)
    assert rows["codec-ceiling"]["rmse"] == pytest.approx(1 / math.sqrt(12), rel=0.05)
    assert rows["codec-ceiling"]["psnr_dataset"] > 50 > rows["mean"]["psnr_dataset"]
    without = evaluate(TensorPairs("real-optical", images, scaling), options)
    assert [r.method for r in without.results] == ["oracle-mean", "mean"]
    assert "codec-ceiling left out for rgb:nir: needs a checkpoint's codec" in without.warnings


def test_tiled_scoring_blends_tiles_back_into_the_whole_chip(optical):
    """With --tile smaller than the chips, each chip goes through overlapping tiles and blend
    weights that sum to 1: a per-pixel translator gives the whole-chip result again."""
    images, scaling = optical
    scaling = {"rgb": scaling["rgb"], "pan": default_scaling("pan", 1)}
    data = {s: {"rgb": images[s]["rgb"], "pan": torch.zeros_like(images[s]["rgb"][:, :1])} for s in images}
    pairs = TensorPairs("real-rgb", data, scaling)
    d = parse_directions("rgb:pan")[0]
    batch = next(pairs.batches("test", d, 4))
    whole = translator_method(LuminanceTranslator(), d, scaling, seed=0)(batch, 0)
    side = batch.source.shape[-1]
    tiled = translator_method(LuminanceTranslator(), d, scaling, seed=0, tile=side // 2, overlap=side // 8)(batch, 0)
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)
    with pytest.raises(EarthgenError, match="overlap"):
        EvaluateOptions(parse_directions("rgb:pan"), tile=16, overlap=8)

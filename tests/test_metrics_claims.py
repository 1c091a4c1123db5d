"""The evidence rule on real chips: controls a model that ignores its input must fail.

A dataset built from real BigEarthNet-MM scenes (rgb, nir; 40 px chips, split by scene, the scored
split renamed `holdout` as an out-of-region split is) is scored with test doubles behind the
Translator protocol: one that ignores its input (a fixed real texture) and one that looks the
reference up from its source (the reference plus small noise). The claim rule must reject the first
and accept the second; the `mean` baseline must be the constant at the train split's raw mean, and
the `shuffled-source` control must give each chip another scene's source.
"""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from earthgen_cli.cli.app import app
from earthgen_cli.claims import judge, judge_results
from earthgen_cli.evaluate.controls import scene_derangement
from earthgen_cli.evaluate.dataset_pairs import DatasetPairs
from earthgen_cli.evaluate.metrics import psnr_ref
from earthgen_cli.evaluate.report import read_report
from earthgen_cli.evaluate.pair_source import Direction, TensorPairs, parse_directions
from earthgen_cli.evaluate.runner import EvaluateOptions, evaluate
from earthgen_cli.io.dataset_store import ChipRecord, open_dataset

CONFIG = """root: {root}
sources:
  - name: bigearthnet_mm
    scenes: bigearthnet_mm/*
    modalities:
      rgb: {{file: s2_rgb.tif}}
      nir: {{file: s2_nir.tif}}
"""
D = Direction("rgb", "nir")
HOLDOUT = "holdout"


@pytest.fixture(scope="module")
def dataset(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate-claims")
    (folder / "bm.yaml").write_text(CONFIG.format(root=shared_data))
    result = CliRunner().invoke(app, ["build-dataset", str(folder / "ds"), "-c", str(folder / "bm.yaml"),
                                      "--chip", "40", "--split-by", "scene", "--val-frac", "0",
                                      "--test-frac", "0.34", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    # the scored split as an out-of-region split: nothing in evaluate may assume it is called test
    chips = folder / "ds" / "chips.csv"
    with open(chips, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["split"] = HOLDOUT if r["split"] == "test" else r["split"]
    with open(chips, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "ds"


class IgnoresInput:
    """Returns one fixed real texture whatever the source: a model that ignores its input."""

    name, tile_multiple = "ignores-input", 1

    def __init__(self, texture: np.ndarray) -> None:
        self.texture = texture  # (C, H, W) raw units

    def check(self, sources, target) -> None:
        pass

    def translate(self, batch, target):
        return np.broadcast_to(self.texture, (batch.size, *self.texture.shape)).astype(np.float32)


class LooksUpReference:
    """Test double of a model that uses its input: finds each chip by its source among the split's
    chips and returns that chip's reference plus noise of 5 % of the reference's spread."""

    name, tile_multiple = "looks-up-reference", 1

    def __init__(self, pairs: DatasetPairs, split: str) -> None:
        s, t = pairs.scaling[D.source], pairs.scaling[D.target]
        batches = list(pairs.batches(split, D, 64))
        self.sources = torch.cat([s.from_model(b.source) for b in batches]).numpy()
        self.targets = torch.cat([t.from_model(b.target) for b in batches]).numpy()

    def check(self, sources, target) -> None:
        pass

    def translate(self, batch, target):
        out = []
        for src, origin in zip(batch.sources[D.source], batch.origins):
            k = int(np.abs(self.sources - src).reshape(len(self.sources), -1).mean(axis=1).argmin())
            ref = self.targets[k]
            noise = np.random.default_rng(origin[0]).standard_normal(ref.shape)
            out.append(ref + 0.05 * ref.std() * noise)
        return np.stack(out).astype(np.float32)


def _score(dataset, unified, **kw):
    pairs = DatasetPairs(dataset)
    options = EvaluateOptions((D,), split=HOLDOUT, baselines=("mean",), fid=False, batch_size=8, grid_chips=0, **kw)
    out = evaluate(pairs, options, unified=unified)
    return pairs, out, {r.method: r for r in out.results}


def _train_texture(pairs: DatasetPairs) -> np.ndarray:
    b = next(iter(pairs.batches("train", D, 1)))
    return pairs.scaling[D.target].from_model(b.target[0]).numpy()


def test_the_split_holds_enough_held_out_chips_and_scenes(dataset):
    pairs = DatasetPairs(dataset)
    scenes = pairs.scenes(HOLDOUT, D)
    assert len(scenes) >= 8 and len(set(scenes)) >= 2
    assert not set(scenes) & set(pairs.scenes("train"))  # split by scene: none seen in training


def test_a_model_that_ignores_its_input_is_not_validated(dataset):
    pairs = DatasetPairs(dataset)
    pairs, out, rows = _score(dataset, {"sample": IgnoresInput(_train_texture(pairs))})
    model, shuffled = rows["unified (sample)"].metrics, rows["shuffled-source (sample)"].metrics
    assert abs(model["corr"]) < 0.15  # a texture unrelated to the reference
    assert model["psnr"] == shuffled["psnr"] and model["corr"] == shuffled["corr"]  # no gain at all
    assert model["psnr"] < rows["oracle-mean"].metrics["psnr"]
    claim = judge_results(out.results, out.held_out)["rgb:nir"]
    assert not claim.validated and claim.estimate == "unified (sample)"
    assert "gain over shuffled-source 0.00 dB < 1" in claim.failed
    assert any(f.startswith("corr ") for f in claim.failed)
    assert claim.verdict.startswith("not validated (unified (sample)): ")
    # a flat output correlates with nothing: corr is 0, not NaN; SCC 0 up to float32 round-off of
    # its Laplacian on a level that is not a binary fraction
    flat = IgnoresInput(np.full_like(_train_texture(pairs), 1500.0))
    _, _, flat_rows = _score(dataset, flat)
    assert flat_rows["unified"].metrics["corr"] == 0.0 and abs(flat_rows["unified"].metrics["scc"]) < 0.01


def test_a_model_that_uses_its_input_is_validated(dataset):
    pairs = DatasetPairs(dataset)
    _, out, rows = _score(dataset, {"sample": IgnoresInput(_train_texture(pairs)),
                                    "mean": LooksUpReference(pairs, HOLDOUT)})
    model, shuffled = rows["unified (mean)"].metrics, rows["shuffled-source (mean)"].metrics
    assert model["corr"] > 0.9 and model["psnr"] > rows["oracle-mean"].metrics["psnr"] + 5
    assert model["psnr"] - shuffled["psnr"] > 5  # another scene's source gives another chip's answer
    assert shuffled["corr"] < 0.5
    claim = judge_results(out.results, out.held_out)["rgb:nir"]
    assert claim.validated and claim.estimate == "unified (mean)" and claim.failed == ()  # the best estimate named
    assert claim.chips == out.held_out["rgb:nir"]["chips"] >= 8 and claim.scenes >= 2
    # the same numbers with too few chips or one scene are not a claim
    assert judge("rgb:nir", claim.psnr, claim.corr, 6, 1).failed == ("6 chips < 8", "1 held-out scenes < 2")


def test_mean_is_the_constant_at_the_raw_train_mean_and_oracle_mean_is_at_least_as_good(dataset):
    import zarr

    pairs, out, rows = _score(dataset, None)
    scale = pairs.scaling["nir"]
    ends = scale.from_model(torch.tensor([-1.0, 1.0], dtype=torch.float64).reshape(2, 1, 1, 1))
    floor = 1e-3 * float(ends[1] - ends[0])
    target = torch.cat([scale.from_model(b.target.double()) for b in pairs.batches(HOLDOUT, D, 64)])

    def scored(level: float) -> float:  # a hand-built constant image, scored on the same chips
        return float(psnr_ref(torch.full_like(target, level), target, floor=floor).mean())

    # the train mean by hand, from the raw values the evaluation serves (valid pixels of both)
    served = [(scale.from_model(b.target.double()), b.valid) for b in pairs.batches("train", D, 64)]
    by_hand = float(torch.cat([t[:, 0][v] for t, v in served]).mean())
    assert rows["mean"].metrics["psnr"] == pytest.approx(scored(by_hand), abs=1e-6)
    # ... and from the raw values stored in chips.zarr: the same constant up to the float32 model
    # space the chips are served in (a model-space mean is off by far more wherever the
    # normalisation is not linear in raw units)
    built = open_dataset(dataset)
    group = zarr.open_group(built.arrays_path, mode="r")
    train = [c for c in built.chips_in("train") if {"rgb", "nir"} <= set(c.modalities)]
    raw = np.stack([np.asarray(group["nir"][c.row], dtype=np.float64)[0] for c in train])
    ok = np.stack([np.isfinite(np.asarray(group["rgb"][c.row])).all(0) for c in train]) & np.isfinite(raw)
    assert rows["mean"].metrics["psnr"] == pytest.approx(scored(float(raw[ok].mean())), abs=1e-4)
    assert rows["mean"].n_images == rows["oracle-mean"].n_images == len(target)
    assert rows["oracle-mean"].metrics["psnr"] >= rows["mean"].metrics["psnr"]
    assert rows["mean"].metrics["corr"] == rows["oracle-mean"].metrics["corr"] == 0.0


def test_shuffled_sources_come_from_another_scene_deterministically():
    scenes = ["a"] * 3 + ["b"] * 3 + ["c"] * 2
    donors = scene_derangement(scenes)
    assert sorted(donors) == list(range(8))  # a derangement: every chip donates once
    assert all(scenes[donors[i]] != scenes[i] for i in range(8))
    assert scene_derangement(scenes) == donors
    lopsided = ["a"] * 5 + ["b"]  # one scene holds most chips: donors repeat, never the same scene
    donors = scene_derangement(lopsided)
    assert all(lopsided[donors[i]] != lopsided[i] for i in range(6))
    assert scene_derangement(["a", "a"]) is None


def test_flagged_chips_are_left_out_and_counted(shared_data):
    from test_baselines import real_scenes

    from earthgen_cli.modalities import default_scaling

    scenes = real_scenes(shared_data, {"rgb": "s2_rgb.tif", "nir": "s2_nir.tif"})
    scaling = {m: default_scaling(m, scenes[m].shape[1]) for m in scenes}
    images = {"train": {m: v[:10] for m, v in scenes.items()}, HOLDOUT: {m: v[10:] for m, v in scenes.items()}}
    flags = {HOLDOUT: ["", "cloud", "", ""]}
    options = EvaluateOptions(parse_directions("rgb:nir"), split=HOLDOUT, baselines=("mean",), fid=False)
    out = evaluate(TensorPairs("real", images, scaling, flags=flags), options)
    assert {r.n_images for r in out.results} == {3} and out.held_out["rgb:nir"]["flagged_left_out"] == 1
    assert "flagged chips left out (--include-flagged keeps them): rgb:nir 1" in out.warnings
    out = evaluate(TensorPairs("real", images, scaling, flags=flags, include_flagged=True), options)
    assert {r.n_images for r in out.results} == {4} and not any("flagged" in w for w in out.warnings)


def test_the_dataset_s_flags_column_leaves_chips_out(dataset, tmp_path):
    if "flags" not in ChipRecord.__dataclass_fields__:
        pytest.skip("this dataset store has no flags column yet")
    flagged = tmp_path / "ds"
    shutil.copytree(dataset, flagged)
    with open(flagged / "chips.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    holdout = [r for r in rows if r["split"] == HOLDOUT]
    holdout[0]["flags"] = "cloud"
    with open(flagged / "chips.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) + ([] if "flags" in rows[0] else ["flags"]))
        writer.writeheader()
        writer.writerows(rows)
    assert DatasetPairs(flagged).count(HOLDOUT, D) == DatasetPairs(dataset).count(HOLDOUT, D) - 1
    assert DatasetPairs(flagged).flagged(HOLDOUT, D) == 1
    assert DatasetPairs(flagged, include_flagged=True).count(HOLDOUT, D) == DatasetPairs(dataset).count(HOLDOUT, D)


def test_evaluate_cli_scores_each_estimate_beside_its_control(dataset, tmp_path):
    from generate_fixtures import checkpoint_info, random_checkpoint

    ckpt = random_checkpoint(tmp_path / "ck", checkpoint_info(("rgb", "nir"), ("rgb+nir",)))
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["evaluate", "--data", str(dataset), "-o", str(out), "--model", str(ckpt),
                                      "--split", HOLDOUT, "--directions", "rgb:nir", "--estimate", "sample,mean",
                                      "--baselines", "mean", "--max-chips", "4", "--steps", "1", "--no-fid",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    report = read_report(out / "report.json")
    assert {r.method for r in report.results} == {"unified (sample)", "unified (mean)", "shuffled-source (sample)",
                                                  "shuffled-source (mean)", "oracle-mean", "mean"}
    assert report.data["split"] == HOLDOUT and report.config["estimates"] == ["sample", "mean"]
    claim = report.claims()["rgb:nir"]
    assert not claim.validated and "4 chips < 8" in claim.failed  # a random model on 4 chips
    md = (out / "report.md").read_text()
    assert "| rgb→nir |" in md and claim.verdict in md
    bad = CliRunner().invoke(app, ["evaluate", "--data", str(dataset), "-o", str(tmp_path / "x"), "--model", str(ckpt),
                                   "--split", HOLDOUT, "--estimate", "median", "--no-fid"])
    assert bad.exit_code == 2 and "--estimate median" in bad.output


def test_without_a_second_scene_there_is_no_shuffled_source_and_no_claim(shared_data):
    from test_baselines import real_scenes

    from earthgen_cli.modalities import default_scaling

    scenes = real_scenes(shared_data, {"rgb": "s2_rgb.tif", "nir": "s2_nir.tif"})
    scaling = {m: default_scaling(m, scenes[m].shape[1]) for m in scenes}
    images = {"train": {m: v[:10] for m, v in scenes.items()}, "test": {m: v[10:] for m, v in scenes.items()}}
    one_scene = TensorPairs("real", images, scaling, scenes={"test": ["s"] * 4})
    texture = scaling["nir"].from_model(scenes["nir"][0]).numpy()
    out = evaluate(one_scene, EvaluateOptions(parse_directions("rgb:nir"), baselines=(), fid=False),
                   unified=IgnoresInput(texture))
    assert [r.method for r in out.results] == ["unified", "oracle-mean"]
    assert "shuffled-source left out for rgb:nir: the chips scored come from one scene" in out.warnings
    claim = judge_results(out.results, out.held_out)["rgb:nir"]
    assert "no shuffled-source score" in claim.failed and "4 chips < 8" in claim.failed
    assert "1 held-out scenes < 2" in claim.failed

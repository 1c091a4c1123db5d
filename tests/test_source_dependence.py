"""The model must use its input: a small model trained briefly on real Sentinel-2 chips must give
outputs that follow the source (correlation with the reference) far more than outputs made from
another scene's source (the shuffled-source control, which must stay near zero).

Before the aligned conditioning path (models/earthgen.py, `aligned`) the only route from source to
target was the scene encoder's attention and AdaLN: the same run scored corr 0.00 against 0.00 for
its shuffled control, i.e. its output did not depend on its input at all. This test fails then.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import torch

from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.evaluate.controls import scene_derangement
from earthgen_cli.evaluate.metrics import corr
from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.translator import TileBatch
from earthgen_cli import checkpoint as ck
from train_fixtures import TINY, earthgen  # noqa: F401


@pytest.fixture(scope="module")
def s2_chips(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("s2")
    config = root / "s2.yaml"
    config.write_text(textwrap.dedent(f"""\
        root: {shared_data}
        sources:
          - name: ben_mm
            scenes: bigearthnet_mm/*
            modalities: {{rgb: {{file: s2_rgb.tif}}, nir: {{file: s2_nir.tif}}}}
          - name: ben_s2
            scenes: bigearthnet_s2only/*
            modalities: {{rgb: {{file: s2_rgb.tif}}, nir: {{file: s2_nir.tif}}}}
          - name: ben_v1
            scenes: bigearthnet_v1_configilm/*
            modalities: {{rgb: {{file: s2_rgb.tif}}, nir: {{file: s2_nir.tif}}}}
        """))
    out = root / "chips"
    earthgen("build-dataset", str(out), "--config", str(config), "--chip", "32", "--split-by", "scene",
             "--test-frac", "0.2", "--workers", "1", "-q")
    return out


@pytest.mark.slow
def test_trained_model_follows_its_source_not_another_scenes(tmp_path, s2_chips):
    run = tmp_path / "run"
    earthgen("train", "--config", str(TINY), "--set", f"data.root={s2_chips}", "--set", "data.crop=16",
             "--set", "optim={steps: 300, batch_size: 8, lr: 0.001, warmup: 20, ema: 0.99, precision: fp32}",
             "--set", f"run={{out_dir: {run}, log_every: 100, save_every: 300, progress: false}}")
    ckpt = run / "checkpoints" / "step_000300"
    info = ck.read_info(ckpt)
    assert info.model.aligned

    ds = ChipDataset(s2_chips, "test", ["rgb", "nir"])
    scenes = sorted({c.scene for c in ds.chips})
    assert len(scenes) >= 2, scenes
    picks = list(range(0, len(ds), max(1, len(ds) // 32)))[:32]
    samples = [ds[(i, ("rgb", "nir"))] for i in picks]
    raw = {m: np.stack([info.scaling[m].from_model(s["images"][m].numpy()) for s in samples]) for m in ("rgb", "nir")}
    # the control: each chip's source taken from a chip of another scene
    shuffled = scene_derangement([ds.chips[i].scene for i in picks])  # evaluate's control donors
    n = len(picks)
    tr = ModelTranslator.load(ckpt, device="cpu", estimate="mean")

    def run_model(src: np.ndarray) -> np.ndarray:
        batch = TileBatch({"rgb": src}, np.ones((n, 32, 32), bool), tuple((0, 32 * i) for i in range(n)),
                          gsd=10.0, seed=0)
        return tr.translate(batch, "nir")

    def _corr(pred: np.ndarray) -> float:
        return float(corr(torch.from_numpy(pred), torch.from_numpy(raw["nir"])).mean())

    real = _corr(run_model(raw["rgb"]))
    control = _corr(run_model(raw["rgb"][shuffled]))
    print(f"rgb->nir corr {real:.3f}, shuffled-source control {control:.3f}")
    assert abs(control) < 0.1, control
    assert real > 0.15 and real - control > 0.12, (real, control)

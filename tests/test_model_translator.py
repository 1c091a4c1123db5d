"""ModelTranslator: the Translator protocol over a real (random-weight) checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.loader import load_translator
from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.runtime import ModelRuntime, resolve_batch_size
from earthgen_cli.inference.translator import TileBatch
from earthgen_cli import checkpoint as ck
from test_checkpoint import _info, _save


def _batch(n: int, seed: int = 7, start: int = 0) -> TileBatch:
    g = np.random.default_rng(0)
    sar = g.uniform(-25, 0, size=(8, 2, 16, 16)).astype(np.float32)
    valid = np.ones((8, 16, 16), bool)
    valid[1, :3] = False
    origins = tuple((16 * (i // 4), 16 * (i % 4)) for i in range(8))
    sl = slice(start, start + n)
    return TileBatch({"sar": sar[sl]}, valid[sl], origins[sl], gsd=10.0, seed=seed)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "step_000012"
    info = _info()
    _save(path, info)
    # ema == model weights here so that the in-memory comparison below sees the same network
    (path / "ema.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    return path


def test_protocol_and_grouping_independence_for_one_batch_size(ckpt):
    tr = load_translator(str(ckpt), device="cpu")
    assert isinstance(tr, ModelTranslator) and tr.tile_multiple == 2
    tr.check(["sar"], "rgb")
    assert tr.output_bands("rgb", {"sar": 2}) == 3 and tr.output_dtype("rgb", {}) == "uint16"
    whole = tr.translate(_batch(8), "rgb")
    assert whole.shape == (8, 3, 16, 16) and whole.dtype == np.float32 and np.isfinite(whole).all()
    halves = np.concatenate([tr.translate(_batch(3), "rgb"), tr.translate(_batch(5, start=3), "rgb")])
    np.testing.assert_array_equal(whole, halves)
    assert not np.array_equal(whole, tr.translate(_batch(8, seed=8), "rgb"))  # the seed matters
    assert np.abs(whole[0] - whole[1]).max() > 0  # different positions get different noise


def test_batch_size_defaults_by_device_and_refuses_zero(ckpt):
    assert resolve_batch_size(None, torch.device("cpu")) == 4
    assert resolve_batch_size(None, torch.device("cuda")) == 16
    assert resolve_batch_size(7, torch.device("cpu")) == 7
    with pytest.raises(EarthgenError, match="--batch-size must be at least 1"):
        load_translator(str(ckpt), device="cpu", batch_size=0)


def test_save_load_sample_identical_to_in_memory(ckpt):
    model, info = ck.load_model(ckpt, ema=False)
    mem = ModelTranslator(ModelRuntime.place(model, info, ckpt, "cpu"), steps=3, sampler="heun", guidance=2.0)
    disk = ModelTranslator.load(ckpt, device="cpu", steps=3, sampler="heun", guidance=2.0)
    a, ca = mem.translate_with_confidence(_batch(4), "rgb")
    b, cb = disk.translate_with_confidence(_batch(4), "rgb")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    assert ca.shape == (4, 1, 16, 16) and ((ca > 0) & (ca <= 1)).all()
    sde = ModelTranslator.load(ckpt, device="cpu", steps=2, sampler="euler-maruyama")
    np.testing.assert_array_equal(sde.translate(_batch(4), "rgb"), sde.translate(_batch(4), "rgb"))
    assert disk.describe()["EARTHGEN_SAMPLER"] == "heun"


def test_bad_requests_are_one_line_errors(ckpt):
    tr = ModelTranslator.load(ckpt, device="cpu")
    with pytest.raises(EarthgenError, match="never saw modality nir"):
        tr.check(["sar"], "nir")
    bad = _batch(2)
    with pytest.raises(EarthgenError, match="source sar has 1 bands"):
        tr.translate(dataclasses.replace(bad, sources={"sar": bad.sources["sar"][:, :1]}), "rgb")
    with pytest.raises(EarthgenError, match="not a multiple of 2"):
        tr.translate(TileBatch({"sar": np.zeros((1, 2, 15, 15), np.float32)}, np.ones((1, 15, 15), bool),
                               ((0, 0),)), "rgb")
    with pytest.raises(EarthgenError, match="bad sampling option"):
        ModelTranslator.load(ckpt, device="cpu", steps=0)
    with pytest.raises(EarthgenError, match="not a checkpoint|missing config.json"):
        ModelTranslator.load(ckpt.parent, device="cpu")


def test_several_sources_condition_together(tmp_path):
    info = dataclasses.replace(_info(), model=dataclasses.replace(
        _info().model, modalities=("rgb", "sar", "nir"), bands={"rgb": 3, "sar": 2, "nir": 1}))
    info = dataclasses.replace(info, scaling={**info.scaling, "nir": info.scaling["rgb"].__class__((0.0,), (5000.0,))},
                               latent_stats={**info.latent_stats, "nir": {"shift": [0.0] * 4, "scale": [1.0] * 4}})
    _save(tmp_path / "ck3", info)
    (tmp_path / "ck3" / "ema.safetensors").write_bytes((tmp_path / "ck3" / "model.safetensors").read_bytes())
    tr = ModelTranslator.load(tmp_path / "ck3", device="cpu", steps=2)
    b = _batch(2)
    nir = np.full((2, 1, 16, 16), 2500.0, np.float32)
    both = tr.translate(dataclasses.replace(b, sources={"sar": b.sources["sar"], "nir": nir}), "rgb")
    sar_only = tr.translate(b, "rgb")
    assert both.shape == sar_only.shape == (2, 3, 16, 16)
    assert np.abs(both - sar_only).max() > 1e-2  # the extra source reaches the output (raw units)
    with pytest.raises(EarthgenError, match="also a source"):
        tr.check(["sar", "rgb"], "rgb")


def test_joint_generation_steps_slots_together(ckpt):
    from earthgen_cli.flow.generate import SamplingOptions, generate_latents

    model, _ = ck.load_model(ckpt, ema=False)
    g = torch.Generator().manual_seed(0)
    noise = {"rgb": torch.randn(2, 12, 8, 8, generator=g), "sar": torch.randn(2, 8, 8, 8, generator=g)}
    opts = SamplingOptions(steps=3, guidance=2.0)
    a = generate_latents(model, {}, noise, opts, gsd=torch.full((2,), 10.0))
    b = generate_latents(model, {}, noise, opts, gsd=torch.full((2,), 10.0))
    assert a.latents["rgb"].shape == (2, 12, 8, 8) and a.latents["sar"].shape == (2, 8, 8, 8)
    assert all(torch.equal(a.latents[m], b.latents[m]) for m in noise)
    alone = generate_latents(model, {}, {"rgb": noise["rgb"]}, opts, gsd=torch.full((2,), 10.0))
    assert not torch.allclose(alone.latents["rgb"], a.latents["rgb"])  # the slots see each other
    assert set(a.logvars) == {"rgb", "sar"}

"""CAS (MetaEarth-MM eq. 20): InfoNCE behaves as it should, a dual encoder trained on real
rgb/nir pairs scores true pairs above shuffled ones on held-out scenes, and checkpoints round-trip."""

from __future__ import annotations

import math

import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.cas import (
    CASConfig,
    DualEncoder,
    cas_score,
    cas_train_step,
    info_nce,
    load_cas,
    save_cas,
    train_cas,
)
from test_baselines import real_scenes


def test_info_nce_is_log_batch_for_uninformative_and_zero_for_perfect_pairs():
    z = torch.nn.functional.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    same = torch.zeros(8, 4)
    same[:, 0] = 1.0  # every embedding identical: no way to tell pairs apart
    assert info_nce(same, same, torch.tensor(0.0)).item() == pytest.approx(math.log(8), rel=1e-6)
    eye = torch.eye(8)
    assert info_nce(eye, eye, torch.tensor(math.log(100.0))).item() < 1e-3
    assert info_nce(z, z, torch.tensor(math.log(100.0))).item() < info_nce(z, z.roll(1, 0), torch.tensor(math.log(100.0))).item()


def _crops(rgb, nir, scenes, n, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(scenes)[torch.randint(len(scenes), (n,), generator=g)]
    ys, xs = torch.randint(0, 120 - size, (2, n), generator=g)
    a = torch.stack([rgb[i, :, y : y + size, x : x + size] for i, y, x in zip(s, ys, xs)])
    b = torch.stack([nir[i, :, y : y + size, x : x + size] for i, y, x in zip(s, ys, xs)])
    return a, b


def test_trained_encoder_scores_true_pairs_above_shuffled_pairs(shared_data, tmp_path):
    scenes = real_scenes(shared_data, {"rgb": "s2_rgb.tif", "nir": "s2_nir.tif"})
    rgb, nir = ((scenes["rgb"] + 1) / 2).clamp(0, 1), ((scenes["nir"] + 1) / 2).clamp(0, 1)
    torch.manual_seed(0)
    model = DualEncoder(CASConfig("rgb", "nir", 3, 1, width=16, depth=3, embed_dim=64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = [cas_train_step(model, opt, *_crops(rgb, nir, list(range(12)), 32, seed=step))
              for step in range(100)]
    assert sum(losses[-10:]) / 10 < 0.8 * math.log(32)
    a, b = _crops(rgb, nir, [12, 13], 64, seed=1000)  # scenes never seen in training
    true = cas_score(model, a, "rgb", b, "nir")
    shuffled = cas_score(model, a, "rgb", b.roll(1, 0), "nir")
    assert true.shape == (64,) and true.abs().max() <= 100.0 + 1e-4
    assert true.mean() > shuffled.mean() + 3.0, (true.mean(), shuffled.mean())

    loaded = load_cas(save_cas(model, tmp_path / "cas-rgb-nir"))
    assert torch.allclose(cas_score(loaded, a, "rgb", b, "nir"), true, atol=1e-5)


def test_cas_bad_input_is_one_clear_error(tmp_path):
    model = DualEncoder(CASConfig("sar", "rgb", 2, 3, width=8, depth=1, embed_dim=8))
    with pytest.raises(EarthgenError, match="not nir"):
        model.encode("nir", torch.zeros(1, 1, 8, 8))
    with pytest.raises(EarthgenError, match="expects 2 bands"):
        model.encode("sar", torch.zeros(1, 3, 8, 8))
    with pytest.raises(EarthgenError, match="not a CAS encoder"):
        load_cas(tmp_path)
    with pytest.raises(ValueError):
        CASConfig("rgb", "rgb", 3, 3)


def test_train_cas_is_seeded_and_skips_batches_without_negatives():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(5, 3, 16, 16, generator=g), torch.rand(5, 1, 16, 16, generator=g)
    config = CASConfig("rgb", "nir", 3, 1, width=8, depth=2, embed_dim=8)
    one = train_cas(lambda: iter([(a[:4], b[:4]), (a[4:], b[4:])]), config, steps=4, seed=1)
    two = train_cas(lambda: iter([(a[:4], b[:4]), (a[4:], b[4:])]), config, steps=4, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(one.state_dict().values(), two.state_dict().values()))
    untouched = train_cas(lambda: iter([(a[4:], b[4:])]), config, steps=3, seed=1)  # single pairs only
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        fresh = DualEncoder(config)
    assert all(torch.equal(x, y) for x, y in zip(untouched.state_dict().values(), fresh.state_dict().values()))

"""configs/*.yaml mirror the dataclasses; the GPU presets build with the expected shapes (meta device)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from earthgen_cli.modalities import MODALITIES, BandScaling
from earthgen_cli.models.earthgen import EarthGenModel
from earthgen_cli.train.batches import Batch, crop_and_augment, pseudo_pan
from earthgen_cli.train.config import build_model_config, load_train_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BANDS = {m: mod.max_bands for m, mod in MODALITIES.items()}


@pytest.mark.parametrize("name, flow_params, tile", [
    ("tiny", (1e5, 1e6), 2), ("cpu-small", (3e6, 3e7), 4), ("gpu-base", (2e8, 4e8), 16), ("paper", (5.5e8, 7e8), 16),
])
def test_config_builds_its_preset(name, flow_params, tile):
    path = CONFIGS / f"{name}.yaml"
    cfg = load_train_config(path)
    mcfg = build_model_config(cfg, tuple(BANDS), BANDS, str(path))
    with torch.device("meta"):
        model = EarthGenModel(mcfg)
    n = sum(p.numel() for p in model.flow_parameters())
    assert flow_params[0] < n < flow_params[1], n
    assert mcfg.tile_multiple == tile
    if name == "paper":
        assert (mcfg.hidden, mcfg.scene_depth, mcfg.gen_depth, mcfg.patch) == (1024, 20, 4, 2)


def test_augment_keeps_slots_aligned_and_pseudo_pan():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    b = Batch(("nir", "rgb"), [x, x.repeat(1, 3, 1, 1)], [torch.ones(2, 16, 16, dtype=torch.bool)] * 2,
              torch.tensor([10.0, 10.0]), torch.tensor([0, 1]))
    out = crop_and_augment(b, 8, True, g)
    assert out.images[0].shape == (2, 1, 8, 8)
    assert torch.equal(out.images[0], out.images[1][:, :1])  # same crop and transform for both slots
    rgb = BandScaling((0.0,) * 3, (3000.0,) * 3)
    pan = BandScaling((0.0,), (3000.0,))
    img = rgb.to_model(torch.tensor([1000.0, 2000.0, 500.0]).reshape(1, 3, 1, 1).expand(2, 3, 4, 4))
    b = Batch(("nir", "rgb"), [torch.zeros(2, 1, 4, 4), img], [torch.ones(2, 4, 4, dtype=torch.bool)] * 2,
              torch.tensor([10.0, 10.0]), torch.tensor([0, 1]))
    pp = pseudo_pan(b, rgb, pan)
    assert pp.mods == ("pan", "rgb")
    expected = 0.299 * 1000 + 0.587 * 2000 + 0.114 * 500
    np.testing.assert_allclose(pan.from_model(pp.images[0]).numpy(), expected, rtol=1e-5)

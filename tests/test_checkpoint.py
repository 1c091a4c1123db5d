"""Checkpoint directories: round trip, atomic naming, strict one-line errors, describe."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.modalities import BandScaling
from earthgen_cli.models.config import model_config
from earthgen_cli.models.earthgen import EarthGenModel
from earthgen_cli import checkpoint as ck


def _info(**kw) -> ck.CheckpointInfo:
    cfg = model_config("tiny", ("rgb", "sar"), {"rgb": 3, "sar": 2}, **kw)
    scaling = {"rgb": BandScaling((0.0,) * 3, (3000.0,) * 3), "sar": BandScaling((-25.0, -32.0), (5.0, -5.0))}
    stats = {m: {"shift": [0.0] * cfg.latent_channels(m), "scale": [1.0] * cfg.latent_channels(m)}
             for m in cfg.modalities}
    return ck.CheckpointInfo(cfg, scaling, stats, {"rgb+sar": 64}, "flow", 12, {"seed": 0})


def _save(path, info=None):
    info = info or _info()
    torch.manual_seed(0)
    model = EarthGenModel(info.model)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    ema = EarthGenModel(info.model)
    ck.save_checkpoint(path, info, model, ema, {"step": 12, "optimizer": {"lr": torch.tensor(0.1)}})
    return model


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _save(tmp_path / "step_000012")
    loaded, info = ck.load_model(tmp_path / "step_000012", ema=False)
    assert info.step == 12 and info.pairs_seen == {"rgb+sar": 64} and info.model == model.cfg
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 8, 8, 8)]
    t, g = torch.rand(2, 2), torch.full((2,), 10.0)
    model.eval()
    with torch.no_grad():
        a, b = model(z, ["rgb", "sar"], t, g), loaded(z, ["rgb", "sar"], t, g)
    assert all(torch.equal(x, y) for x, y in zip(a.pred, b.pred))
    assert not (tmp_path / "step_000012.tmp").exists()
    assert ck.newest_checkpoint(tmp_path) == tmp_path / "step_000012"


def test_newest_ignores_incomplete_and_prune_keeps_last(tmp_path):
    for s in (5, 10, 15):
        _save(tmp_path / f"step_{s:06d}")
    (tmp_path / "step_000020.tmp").mkdir()  # a save killed half-way
    shutil.copytree(tmp_path / "step_000015", tmp_path / "step_000025")
    (tmp_path / "step_000025" / "ema.safetensors").unlink()
    assert ck.newest_checkpoint(tmp_path) == tmp_path / "step_000015"
    ck.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_0000??")) == ["step_000015", "step_000025"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "ema.safetensors").unlink(), "missing ema.safetensors"),
    (lambda p: (p / "config.json").unlink(), "missing config.json"),
    (lambda p: (p / "config.json").write_text("{not json"), "unreadable JSON"),
    (lambda p: (p / "ema.safetensors").write_bytes(b"garbage"), "unreadable safetensors"),
])
def test_damaged_checkpoint_is_one_line_error(tmp_path, damage, message):
    path = tmp_path / "ck"
    _save(path)
    damage(path)
    with pytest.raises(EarthgenError, match=message) as exc:
        ck.load_model(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_mismatched_shapes_and_unknown_keys(tmp_path):
    path = tmp_path / "ck"
    _save(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["hidden"] = 64
    cfg["model"]["heads"] = 4
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EarthgenError, match=r"config.json: declares a model of .* ema.safetensors holds .*tensor"):
        ck.load_model(path)
    cfg["model"]["hiddden"] = 3
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EarthgenError, match="unknown key model.hiddden"):
        ck.load_model(path)
    cfg["model"].pop("hiddden")
    cfg["model"]["heads"] = "four"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EarthgenError, match="model.heads must be int"):
        ck.load_model(path)


def test_train_state_loads_weights_only_and_describe(tmp_path):
    path = tmp_path / "ck"
    _save(path)
    info = ck.read_info(path)
    m, e = ck.build_model(info), ck.build_model(info)
    state = ck.load_into(path, m, e)
    assert state["step"] == 12
    text = ck.describe_checkpoint(path)
    assert "modalities: rgb (3 bands), sar (2 bands)" in text
    assert "rgb+sar (64)" in text and "preset: tiny" in text and "step 12" in text
    assert f"{sum(p.numel() for p in m.parameters()):,}" in text

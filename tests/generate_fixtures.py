"""Tiny checkpoints for the generation tests, built in-process (no `earthgen train`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from earthgen_cli.modalities import BandScaling, get_modality
from earthgen_cli.models.config import model_config
from earthgen_cli.models.earthgen import EarthGenModel
from earthgen_cli import checkpoint as ck

SCALING = {"rgb": BandScaling((0.0,) * 3, (3000.0,) * 3), "sar": BandScaling((-25.0, -32.0), (5.0, -5.0)),
           "osm": BandScaling((0.0,) * 3, (255.0,) * 3), "nir": BandScaling((0.0,), (5000.0,))}


def checkpoint_info(mods=("osm", "rgb", "sar"), pairs=("osm+rgb", "rgb+sar")) -> ck.CheckpointInfo:
    bands = {m: get_modality(m).min_bands if m != "sar" else 2 for m in mods}
    bands = {m: (3 if m in ("rgb", "osm") else bands[m]) for m in mods}
    cfg = model_config("tiny", tuple(mods), bands)
    stats = {m: {"shift": [0.0] * cfg.latent_channels(m), "scale": [1.0] * cfg.latent_channels(m)} for m in mods}
    return ck.CheckpointInfo(cfg, {m: SCALING[m] for m in mods}, stats, {p: 64 for p in pairs}, "flow", 1, {})


def random_checkpoint(path: Path, info: ck.CheckpointInfo | None = None, seed: int = 0) -> Path:
    """Random weights (every layer non-zero, so every input matters)."""
    info = info or checkpoint_info()
    torch.manual_seed(seed)
    model = EarthGenModel(info.model)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    ck.save_checkpoint(path, info, model, model)
    return path


def smooth_fields(n: int, channels: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Model-space images that are nearly constant per tile: a random level plus a gentle ramp."""
    level = torch.rand(n, channels, 1, 1, generator=gen) * 1.6 - 0.8
    ramp = torch.linspace(-0.1, 0.1, size)[None, None, :, None] * torch.rand(n, 1, 1, 1, generator=gen)
    return (level + ramp).expand(n, channels, size, size).contiguous()


def optimizer_step(model: EarthGenModel):
    """loss -> one AdamW step (lr 3e-3) on the model's flow parameters."""
    opt = torch.optim.AdamW(model.flow_parameters(), lr=3e-3)

    def step(loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def save_trained(path: Path, info: ck.CheckpointInfo, model: EarthGenModel) -> Path:
    model.eval()
    ck.save_checkpoint(path, info, model, model)
    return path


def smooth_checkpoint(path: Path, steps: int = 150, size: int = 16) -> Path:
    """A tiny rgb+sar model trained in-process for a few seconds on smooth random tiles (rgb and
    sar levels linked): it learns to paint one smooth level per tile, so tiles sampled
    independently disagree and would show seams; agreement must come from the sampler."""
    info = checkpoint_info(("rgb", "sar"), ("rgb+sar",))
    torch.manual_seed(0)
    model = EarthGenModel(info.model)
    gen = torch.Generator().manual_seed(0)
    step = optimizer_step(model)
    for _ in range(steps):
        rgb = smooth_fields(16, 3, size, gen)
        sar = rgb[:, :2].flip(1) * 0.5
        x0 = [model.codec("rgb").encode(rgb), model.codec("sar").encode(sar)]
        eps = [torch.randn(z.shape, generator=gen) for z in x0]
        t = torch.rand(16, 2, generator=gen)
        t[:8, 1] = 0.0  # half conditional (sar clean), half joint
        xt = [(1 - t[:, k, None, None, None]) * a + t[:, k, None, None, None] * e for k, (a, e) in enumerate(zip(x0, eps))]
        out = model(xt, ["rgb", "sar"], t, gsd=torch.full((16,), 10.0))
        loss = sum(((p - (e - a)) ** 2 * (t[:, k, None, None, None] > 0)).mean()
                   for k, (p, a, e) in enumerate(zip(out.pred, x0, eps)))
        step(loss)
    return save_trained(path, info, model)


def masked_smooth_checkpoint(path: Path, steps: int = 200, size: int = 32) -> Path:
    """A tiny rgb model with model.token_times, trained in-process through the training stage's own
    objective on masked-slot samples of smooth random tiles (flow.path.mask_slot_times +
    FlowObjective): it can only fill a hole at the right level by reading the known tokens."""
    from dataclasses import replace
    from types import SimpleNamespace

    from earthgen_cli.flow.objective import FlowObjective
    from earthgen_cli.flow.path import mask_slot_times, sample_slot_times

    info = checkpoint_info(("rgb",), ())
    info = replace(info, model=replace(info.model, token_times=True))
    torch.manual_seed(0)
    model = EarthGenModel(info.model)
    objective = FlowObjective(model, SimpleNamespace(lambda_sc=0.0, lambda_calib=0.0, beta_nll=0.0, chip_norm=0.0))
    gen = torch.Generator().manual_seed(0)
    step = optimizer_step(model)
    grid = (size // (info.model.codec.factor * info.model.patch),) * 2
    for _ in range(steps):
        x0 = [model.codec("rgb").encode(smooth_fields(16, 3, size, gen))]
        eps = [torch.randn(x0[0].shape, generator=gen)]
        st = mask_slot_times(sample_slot_times(16, 1, (1.0, 0.0, 0.0), gen), grid, gen)
        loss = objective(x0, [torch.ones_like(x0[0][:, :1])], ["rgb"], eps, st.t, st.loss_mask,
                         torch.full((16,), 10.0), torch.zeros(16, dtype=torch.bool))["loss"]
        step(loss)
    return save_trained(path, info, model)


def shared_smooth_checkpoint(tmp_path_factory) -> Path:
    """One smooth checkpoint per test session (training is deterministic, so sharing it is safe)."""
    path = Path(tmp_path_factory.getbasetemp()) / "smooth_ck"
    return path if (path / "ema.safetensors").is_file() else smooth_checkpoint(path)


def assert_same_up_to_rounding(a: np.ndarray, b: np.ndarray) -> None:
    """Runs with another --batch-size: the same noise (keyed by position), but BLAS blocks a batch of
    another shape differently, so a value may round to the neighbouring integer, never more."""
    assert a.shape == b.shape and a.dtype == b.dtype
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def kl_checkpoint(path: Path) -> Path:
    """Random weights with small KL autoencoder codecs (latents not a pixel rearrangement)."""
    from dataclasses import replace

    from earthgen_cli.models.config import CodecConfig, CodecKind

    info = checkpoint_info(("rgb", "sar"), ("rgb+sar",))
    cfg = replace(info.model, codec=CodecConfig(CodecKind.kl, 2, 4, (32, 32)))
    stats = {m: {"shift": [0.0] * 4, "scale": [1.0] * 4} for m in cfg.modalities}
    return random_checkpoint(path, replace(info, model=cfg, latent_stats=stats))

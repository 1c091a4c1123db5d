"""Sampling with the unified model in latent space: translation (sources clean at t=0, the target
from noise) with classifier-free guidance, the target's residual adapter and its confidence.

Shared by the scene translator and the training loop's sample grids. All noise is passed in by the
caller (position-keyed in inference), so results do not depend on how tiles are batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from earthgen_cli.flow.path import to_velocity, to_x0
from earthgen_cli.flow.sampling import NoiseFn, Sampler, get_schedule, guided, sample, shift_for_tokens
from earthgen_cli.models.earthgen import EarthGenModel


@dataclass(frozen=True)
class SamplingOptions:
    steps: int = 8
    sampler: Sampler = Sampler.euler
    guidance: float = 1.0  # 1 = conditional only; > 1 extrapolates away from the unconditional branch
    shift: float | None = None  # time shift; None = from the number of tokens (flux-style)
    eta: float = 1.0  # Euler-Maruyama noise level

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")


@dataclass
class Generated:
    latent: torch.Tensor  # (B, C, h, w) clean target latent after the adapter, fp32
    logvar: torch.Tensor | None  # (B, 1, h, w) from the last model evaluation


def translate_latents(
    model: EarthGenModel,
    sources: Mapping[str, torch.Tensor],
    target: str,
    init_noise: torch.Tensor,
    opts: SamplingOptions,
    gsd: torch.Tensor | None = None,
    uncond_noise: Mapping[str, torch.Tensor] | None = None,
    step_noise: NoiseFn | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> Generated:
    """Integrate the target slot from `init_noise` (t=1) to t=0 with every source slot clean (t=0).

    With guidance != 1 a second, unconditional branch replaces each source with `uncond_noise` at
    t=1 and drops the GSD, which is exactly how the dropped samples looked in training."""
    mods = [target, *sources]
    b = init_noise.shape[0]
    src = [sources[m] for m in sources]
    use_cfg = opts.guidance != 1.0 and bool(sources)
    if use_cfg and (uncond_noise is None or set(uncond_noise) != set(sources)):
        raise ValueError("classifier-free guidance needs replacement noise for every source")
    state: dict[str, torch.Tensor | None] = {"logvar": None}
    device = init_noise.device

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.zeros(b, len(mods), device=device)
        tt[:, 0] = t
        lat, g, drop = [x, *src], gsd, None
        if use_cfg:  # one batched pass for both branches
            lat = [torch.cat([x, x])] + [torch.cat([s, uncond_noise[m]]) for s, m in zip(src, sources)]
            tt = torch.cat([tt, tt])
            tt[b:, 1:] = 1.0
            g = None if gsd is None else torch.cat([gsd, gsd])
            drop = torch.arange(2 * b, device=device) >= b
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(lat, mods, tt, gsd=g, drop=drop)
        pred = out.pred[0].float()
        state["logvar"] = None if out.logvar is None else out.logvar[0][:b].float()
        tcol = tt[:, 0]
        v = to_velocity(pred, torch.cat([x, x]) if use_cfg else x, tcol, model.cfg.target)
        return guided(v[:b], v[b:], opts.guidance) if use_cfg else v

    tokens = init_noise.shape[-2] * init_noise.shape[-1] // model.cfg.patch**2
    shift = opts.shift if opts.shift is not None else shift_for_tokens(tokens)
    schedule = get_schedule(opts.steps, shift)
    # Stop one step early and read the clean latent from the final x0 prediction: identical to the
    # last Euler step for the ODE, and it gives the adapter the network's own x0 estimate.
    x = sample(velocity, init_noise.float(), schedule[:-1], opts.sampler, step_noise, opts.eta)
    t_last = schedule[-2]
    v = velocity(x, t_last)
    x0 = to_x0(v, x, torch.full((b,), t_last, device=device), "velocity")
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        x0 = model.adapt(target, x0).float()
    return Generated(x0, state["logvar"])

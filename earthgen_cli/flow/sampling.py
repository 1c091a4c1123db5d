"""Samplers for the flow ODE/SDE from t=1 (noise) to t=0 (data), flux `get_schedule` + `denoise` style.

The network only predicts; a `VelocityFn` (x, t) -> v wraps it (prediction-target conversion,
guidance, clean source slots). Sampler state stays in fp32 whatever dtype the network runs in.
`step` is public so that callers that must blend latents between steps (MultiDiffusion-style joint
generation) can drive the loop themselves.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from earthgen_cli.flow.choices import Sampler

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
NoiseFn = Callable[[int], torch.Tensor]  # step index -> standard normal noise shaped like x


def time_shift(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3/flux resolution shift: shift > 1 spends more steps at high noise, where large images
    (more tokens, more redundancy) still have their layout undecided."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def shift_for_tokens(tokens: int, base_tokens: int = 256, max_tokens: int = 4096,
                     base_shift: float = 1.0, max_shift: float = 3.0) -> float:
    """Shift interpolated in log space between two image sizes (flux's `get_lin_function` idea)."""
    if tokens <= base_tokens:
        return base_shift
    frac = min(1.0, math.log(tokens / base_tokens) / math.log(max_tokens / base_tokens))
    return base_shift * (max_shift / base_shift) ** frac


def get_schedule(steps: int, shift: float = 1.0) -> list[float]:
    """steps+1 times from 1.0 down to 0.0."""
    if steps < 1:
        raise ValueError(f"sampling needs at least 1 step, got {steps}")
    if shift <= 0:
        raise ValueError(f"time shift must be positive, got {shift}")
    return time_shift(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).tolist()


def sde_drift_and_scale(x: torch.Tensor, v: torch.Tensor, t: float, eta: float) -> tuple[torch.Tensor, float]:
    """Reverse SDE with the ODE's marginals: dx = [v - g^2/2 * score] dt + g dW, g^2 = eta * t.

    For the linear path the score is -eps_hat / t with eps_hat = x + (1-t) v, so the drift term
    stays bounded as t -> 0 (g^2/2 * score = -eta/2 * eps_hat)."""
    eps_hat = x + (1.0 - t) * v
    return v + 0.5 * eta * eps_hat, math.sqrt(eta * t)


def step(sampler: Sampler, velocity: VelocityFn, x: torch.Tensor, t: float, t_next: float,
         noise: torch.Tensor | None = None, eta: float = 1.0) -> torch.Tensor:
    """One step from t to t_next < t; x is fp32."""
    dt = t_next - t  # negative
    v = velocity(x, t).float()
    sampler = Sampler(sampler)
    if sampler is Sampler.euler:
        return x + dt * v
    if sampler is Sampler.heun:
        x_euler = x + dt * v
        if t_next <= 0.0:  # the corrector would evaluate at t=0, where x0-prediction has no velocity
            return x_euler
        return x + dt * 0.5 * (v + velocity(x_euler, t_next).float())
    if t_next <= 0.0:  # last step deterministic: injecting noise at t=0 would only add noise
        return x + dt * v
    if noise is None:
        raise ValueError("the euler-maruyama sampler needs noise for every step but the last")
    drift, g = sde_drift_and_scale(x, v, t, eta)
    return x + dt * drift + g * math.sqrt(-dt) * noise.to(x.device, torch.float32)


def sample(velocity: VelocityFn, x: torch.Tensor, schedule: list[float], sampler: Sampler = Sampler.euler,
           noise: NoiseFn | None = None, eta: float = 1.0) -> torch.Tensor:
    """Integrate from x at schedule[0] to schedule[-1]; returns fp32."""
    x = x.float()
    for i, (t, t_next) in enumerate(zip(schedule[:-1], schedule[1:])):
        n = noise(i) if noise is not None and Sampler(sampler) is Sampler.euler_maruyama and t_next > 0 else None
        x = step(sampler, velocity, x, t, t_next, n, eta)
    return x


def guided(v_cond: torch.Tensor, v_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: scale 1 is the conditional prediction, 0 the unconditional one."""
    return v_uncond + scale * (v_cond - v_uncond)

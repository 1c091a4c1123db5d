"""The rectified-flow path between data and noise, and per-slot time sampling.

Convention (DESIGN.md): t=1 is noise, t=0 is data; `x_t = (1-t) x0 + t eps`, velocity `v = eps - x0`.
Every slot of a sample has its own time, so one batch mixes joint generation (all slots noised),
conditional translation (one slot clean at t=0) and dropped conditions (one slot pure noise at t=1,
which is what classifier-free guidance replaces a condition with at sampling time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from earthgen_cli.models.config import PredictionTarget

# x0 <-> velocity conversions divide by t; below this the prediction is taken as it is.
T_MIN = 1e-4


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape + (1,) * (like.ndim - t.ndim)).to(like.dtype)


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for data `x0` (B, C, H, W), noise `eps` and times `t` (B,)."""
    tt = _bcast(t, x0)
    return (1.0 - tt) * x0 + tt * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return eps - x0


def x0_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x_t - _bcast(t, x_t) * v


def velocity_from_x0(x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # eps_hat = (x_t - (1-t) x0) / t, so v = eps_hat - x0 = (x_t - x0) / t.
    return (x_t - x0) / _bcast(t.clamp_min(T_MIN), x_t)


def to_velocity(pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, target: PredictionTarget) -> torch.Tensor:
    return pred if PredictionTarget(target) is PredictionTarget.velocity else velocity_from_x0(x_t, pred, t)


def to_x0(pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, target: PredictionTarget) -> torch.Tensor:
    return x0_from_velocity(x_t, pred, t) if PredictionTarget(target) is PredictionTarget.velocity else pred


class SlotMode(enum.IntEnum):
    joint = 0  # every slot noised at its own random time
    conditional = 1  # one slot clean (t=0): translation from it
    dropped = 2  # one slot pure noise (t=1): the unconditional branch of guidance


@dataclass(frozen=True)
class SlotTimes:
    t: torch.Tensor  # (B, K) per-slot time in [0, 1]
    loss_mask: torch.Tensor  # (B, K) bool: False on clean slots, whose velocity target is unknowable noise
    mode: torch.Tensor  # (B,) SlotMode of each sample


def logit_normal(shape: tuple[int, ...], generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """SD3's logit-normal time density: more samples at middle times, where the loss is hardest."""
    return torch.sigmoid(torch.randn(shape, generator=generator) * std + mean)


def sample_slot_times(batch: int, slots: int, probs: tuple[float, float, float], generator: torch.Generator,
                      time_mean: float = 0.0, time_uniform: float = 0.0, time_one: float = 0.0) -> SlotTimes:
    """Per-slot times for a batch: a mode per sample drawn with `probs` (joint, conditional, dropped).

    With one slot every sample is joint (there is nothing to condition on). Drawn on the CPU from
    `generator` so that a resumed run reproduces them exactly. `time_mean` > 0 moves the logit-normal
    towards noise, where few-step translation relies most on the prediction; `time_uniform` > 0 draws
    that fraction of the times uniformly in (0, 1) instead (SD3's heavy-tailed mixture), so a model
    trained near t=1 still learns the low noise levels every multi-step sampler passes through.
    `time_one` > 0 sets that fraction of the times to exactly 1 (pure noise): the x0 prediction
    there is the mean estimate (`--estimate mean`) and a translation's first step, which the
    logit-normal density reaches only in its tail (a few % of the draws above 0.98).
    """
    t = logit_normal((batch, slots), generator, mean=time_mean)
    if time_uniform > 0:  # no extra draws at 0: runs without it stay bit-identical
        uniform = torch.rand((batch, slots), generator=generator)
        t = torch.where(torch.rand((batch, slots), generator=generator) < time_uniform, uniform, t)
    if time_one > 0:  # likewise: no draws at 0
        t = torch.where(torch.rand((batch, slots), generator=generator) < time_one, torch.ones_like(t), t)
    if slots == 1:
        mode = torch.zeros(batch, dtype=torch.long)
    else:
        p = torch.tensor(probs, dtype=torch.float64)
        mode = torch.multinomial(p / p.sum(), batch, replacement=True, generator=generator)
        which = torch.randint(0, slots, (batch,), generator=generator)
        rows = torch.arange(batch)
        cond, drop = mode == SlotMode.conditional, mode == SlotMode.dropped
        t[rows[cond], which[cond]] = 0.0
        t[rows[drop], which[drop]] = 1.0
    return SlotTimes(t=t, loss_mask=t > 0.0, mode=mode)


def mask_slot_times(st: SlotTimes, grid: tuple[int, int], generator: torch.Generator,
                    time_one: float = 0.5) -> SlotTimes:
    """Masked-slot times (inpainting, MAE-style), a time per token: in every sample one slot is
    clean (t=0) outside a random rectangle of its token grid and noisy inside it, at a time drawn
    uniformly in (0, 1), or exactly 1 (the one-call fill, `inpaint --steps 1`) for a `time_one`
    fraction; the other slots keep their times. Only the rectangle is trained (the loss masks the
    clean tokens, `FlowObjective`). The rectangle's sides are 1/8 to 3/4 of the grid's, so a model
    learns to fill holes from a few tokens wide up to most of a tile from what surrounds them.
    Returns t of shape (B, K, hp, wp); loss_mask says which slots have any noisy token."""
    b, k = st.t.shape
    hp, wp = grid
    t = st.t[:, :, None, None].repeat(1, 1, hp, wp)
    which = torch.randint(0, k, (b,), generator=generator)
    inner = torch.rand(b, generator=generator).clamp_min(0.02)
    if time_one > 0:
        inner = torch.where(torch.rand(b, generator=generator) < time_one, torch.ones_like(inner), inner)
    sides = []
    for n in (hp, wp):
        lo, hi = max(1, n // 8), max(1, (3 * n) // 4)
        size = torch.randint(lo, hi + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (n - size + 1)).long()
        sides.append((start, size))
    ys, xs = torch.arange(hp)[None, :, None], torch.arange(wp)[None, None, :]
    (y0, hh), (x0, ww) = sides
    rect = ((ys >= y0[:, None, None]) & (ys < (y0 + hh)[:, None, None])
            & (xs >= x0[:, None, None]) & (xs < (x0 + ww)[:, None, None]))  # (B, hp, wp)
    rows = torch.arange(b)
    t[rows, which] = torch.where(rect, inner[:, None, None], torch.zeros(()))
    loss_mask = (t > 0.0).flatten(2).any(2)
    return SlotTimes(t=t, loss_mask=loss_mask, mode=st.mode)

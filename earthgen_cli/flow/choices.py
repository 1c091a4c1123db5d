"""The sampling choices that commands, the Python API and the samplers share, in a module without
torch so the CLI can type its options with them and still start quickly."""

from __future__ import annotations

import enum

DEFAULT_STEPS = 8  # sampling steps of generation, translation and evaluation unless told otherwise


class Sampler(str, enum.Enum):
    euler = "euler"
    heun = "heun"
    euler_maruyama = "euler-maruyama"


class Estimate(str, enum.Enum):
    """What a translation returns. `sample`: one draw from the model's distribution (realistic
    texture, different per seed). `mean`: the posterior mean E[x0 | sources], read from the x0
    prediction at t=1 (targets pure noise) in one model call: smooth, but the L2-best estimate, for
    users who want accuracy over texture."""
    sample = "sample"
    mean = "mean"

"""The sampling choices that commands, the Python API and the samplers share, in a module without
torch so the CLI can type its options with them and still start quickly."""

from __future__ import annotations

import enum

DEFAULT_STEPS = 8  # sampling steps of generation, translation and evaluation unless told otherwise


class Sampler(str, enum.Enum):
    euler = "euler"
    heun = "heun"
    euler_maruyama = "euler-maruyama"

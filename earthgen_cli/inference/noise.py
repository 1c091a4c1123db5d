"""Position-keyed noise: a result must not depend on tile order, batch size or process count.

The scene's (latent) pixel grid is cut into fixed CHUNK x CHUNK cells. Each cell's Gaussian noise
is drawn from its own CPU `torch.Generator`, seeded from (seed, salt, channels, cell row, cell col),
so any window of the grid gets the same numbers whichever tile asks for it and in whatever order.
Overlapping tiles therefore see identical noise in their overlap, which is what blending and
MultiDiffusion-style latent averaging want.

Every salt comes from `noise_salt`, which gives each kind of draw its own integer range, so two
different draws of one seed never share noise (table in its docstring).
"""

from __future__ import annotations

import enum
from typing import Sequence

import torch

from earthgen_cli.seeds import key_digest

CHUNK = 64
RESAMPLE_REPEATS = 64  # RePaint repeats of one step at most (SamplingOptions.resample <= 64)


class NoiseKind(str, enum.Enum):
    """What a NoiseField draw is for; `noise_salt` maps (kind, slot, step, repeat) to its salt."""

    TILE_INIT = "tile-init"  # a tile's or chip's initial noise; slot: place in the request
    SCENE_INIT = "scene-init"  # whole-scene initial noise; slot: the modality's registry index
    UNCOND = "uncond"  # guidance's stand-in for a condition; slot: the condition's index
    STEP = "step"  # stochastic sampler steps; slot: the generated modality (0 if stepped together)
    RESAMPLE = "resample"  # RePaint's re-noising; slot: the generated modality's place


# slots each kind has room for: beyond them its salts would leave its range below
_SLOTS = {NoiseKind.TILE_INIT: 10, NoiseKind.SCENE_INIT: 9, NoiseKind.UNCOND: 900, NoiseKind.STEP: 999,
          NoiseKind.RESAMPLE: 8}


def noise_salt(kind: NoiseKind | str, slot: int = 0, step: int = 0, repeat: int = 0) -> int:
    """The NoiseField salt of one kind of draw. Kinds and their integer ranges:

    ==========  ==========================================  ========  ======  ======  ===================
    kind        salt                                        slot      step    repeat  range
    ==========  ==========================================  ========  ======  ======  ===================
    TILE_INIT   10 * slot                                   0..9      -       -       0, 10, ..., 90
    SCENE_INIT  1 + slot                                    0..8      -       -       1..9
    UNCOND      100 + slot                                  0..899    -       -       100..999
    STEP        1000 * (1 + slot) + step                    0..998    0..999  -       1000..999 999
    RESAMPLE    1 000 000 + (step * 64 + repeat) * 8 + slot  0..7      >= 0    0..63   >= 1 000 000
    ==========  ==========================================  ========  ======  ======  ===================

    The ranges are disjoint (the multiples of 10 below 100 against 1..9; then 100..999,
    1000..999 999 and from 1 000 000 on), and each formula is one-to-one within its limits (STEP:
    `step` is the low three digits; RESAMPLE: mixed radix 8 and 64), so no two draws of one seed
    share a salt. The slot and repeat limits are enforced (a ValueError; today's largest slot is
    the sixth modality's). The STEP limit of 1000 steps is not, so that longer runs behave as they
    always have: from step 1000 on a STEP salt repeats the next slot's (two modalities stepped
    apart, `ModelTranslator.generate_pair`, with --steps > 1000).
    """
    kind = NoiseKind(kind)
    if min(slot, step, repeat) < 0:
        raise ValueError(f"{kind.value} noise: slot, step and repeat must be >= 0, got {slot}, {step}, {repeat}")
    if slot >= _SLOTS[kind]:
        raise ValueError(f"{kind.value} noise: slot {slot} is past the kind's {_SLOTS[kind]} slots")
    if step and kind not in (NoiseKind.STEP, NoiseKind.RESAMPLE):
        raise ValueError(f"{kind.value} noise takes no step, got {step}")
    if repeat and kind is not NoiseKind.RESAMPLE:
        raise ValueError(f"{kind.value} noise takes no repeat, got {repeat}")
    if repeat >= RESAMPLE_REPEATS:
        raise ValueError(f"resample noise: repeat {repeat} is past {RESAMPLE_REPEATS - 1}")
    if kind is NoiseKind.TILE_INIT:
        return 10 * slot
    if kind is NoiseKind.SCENE_INIT:
        return 1 + slot
    if kind is NoiseKind.UNCOND:
        return 100 + slot
    if kind is NoiseKind.STEP:
        return 1000 * (1 + slot) + step
    return 1_000_000 + (step * RESAMPLE_REPEATS + repeat) * 8 + slot


def _cell_seed(seed: int, salt: int, channels: int, row: int, col: int) -> int:
    # the top bit cleared, not shifted out as in seeds.derive_seed: every draw ever made depends on it
    return int.from_bytes(key_digest(seed, salt, channels, row, col), "little") & ((1 << 63) - 1)


class NoiseField:
    """Standard normal noise over an unbounded 2-D grid, a pure function of (seed, salt, position).

    `salt` separates independent draws over the same grid (e.g. one per SDE step or per modality).
    Rows and columns may be negative (outpainting grows the grid to the north and west).
    """

    def __init__(self, seed: int, channels: int, salt: int = 0) -> None:
        if channels < 1:
            raise ValueError("NoiseField needs at least one channel")
        self.seed = int(seed)
        self.channels = int(channels)
        self.salt = int(salt)

    def _cell(self, r: int, c: int) -> torch.Tensor:
        g = torch.Generator(device="cpu").manual_seed(_cell_seed(self.seed, self.salt, self.channels, r, c))
        return torch.randn((self.channels, CHUNK, CHUNK), generator=g, dtype=torch.float32)

    def crop(self, row: int, col: int, height: int, width: int) -> torch.Tensor:
        """(channels, height, width) noise for the window whose top-left is (row, col)."""
        out = torch.empty((self.channels, height, width), dtype=torch.float32)
        r0, r1 = row // CHUNK, (row + height - 1) // CHUNK
        c0, c1 = col // CHUNK, (col + width - 1) // CHUNK
        for r in range(r0, r1 + 1):
            y_lo, y_hi = max(row, r * CHUNK), min(row + height, (r + 1) * CHUNK)
            for c in range(c0, c1 + 1):
                x_lo, x_hi = max(col, c * CHUNK), min(col + width, (c + 1) * CHUNK)
                cell = self._cell(r, c)
                out[:, y_lo - row : y_hi - row, x_lo - col : x_hi - col] = cell[
                    :, y_lo - r * CHUNK : y_hi - r * CHUNK, x_lo - c * CHUNK : x_hi - c * CHUNK
                ]
        return out

    def batch(self, origins: Sequence[tuple[int, int]], height: int, width: int, scale: int = 1) -> torch.Tensor:
        """(B, channels, height, width) for tiles at scene-pixel `origins` on a grid `scale`x coarser.

        A latent grid with codec factor f has `scale=f`: tile origins must fall on it.
        """
        tiles = []
        for row, col in origins:
            if row % scale or col % scale:
                raise ValueError(f"tile origin ({row}, {col}) is not on the x{scale} latent grid")
            tiles.append(self.crop(row // scale, col // scale, height, width))
        return torch.stack(tiles)

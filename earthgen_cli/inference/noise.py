"""Position-keyed noise: a result must not depend on tile order, batch size or process count.

The scene's (latent) pixel grid is cut into fixed CHUNK x CHUNK cells. Each cell's Gaussian noise
is drawn from its own CPU `torch.Generator`, seeded from (seed, salt, channels, cell row, cell col),
so any window of the grid gets the same numbers whichever tile asks for it and in whatever order.
Overlapping tiles therefore see identical noise in their overlap, which is what blending and
MultiDiffusion-style latent averaging want.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

CHUNK = 64


def _cell_seed(seed: int, salt: int, channels: int, row: int, col: int) -> int:
    key = f"{seed}:{salt}:{channels}:{row}:{col}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & ((1 << 63) - 1)


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

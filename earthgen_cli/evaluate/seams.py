"""Seam ratio: how visible the tile borders of a whole-scene output are.

The per-image metrics (metrics.py) compare an output with its target; a scene generated or
translated tile by tile has no target to show its seams, so this one compares the output with
itself: adjacent-pixel differences across tile borders against the same inside tiles (1.0 = the
borders are invisible). The tests hold tiled generation to it and benchmarks/seams.py reports it.
"""

from __future__ import annotations

import numpy as np

from earthgen_cli.inference.tiling import axis_starts


def seam_ratio(image: np.ndarray, tile: int, overlap: int, zones: bool = False) -> float:
    """Mean |adjacent-pixel difference| across tile borders / the same inside tiles.

    Tile borders are the pixel pairs where a tile starts or ends (the scene tiling of
    `inference.tiling`, last tile anchored to the edge); every other adjacent pair is inside.
    `zones=True` counts every pair within an overlap zone as border instead: blending tiles that
    disagree hides their step at the tile edges but spreads it over the blend ramp."""
    img = image.astype(np.float64)
    dx = np.abs(np.diff(img, axis=-1)).mean(axis=tuple(range(img.ndim - 2)) + (-2,))  # per column pair
    dy = np.abs(np.diff(img, axis=-2)).mean(axis=tuple(range(img.ndim - 2)) + (-1,))

    def border_mask(n: int) -> np.ndarray:
        starts = axis_starts(n, tile, overlap)
        edges = {s - 1 for s in starts[1:]} | {s + tile - 1 for s in starts[:-1]}
        if zones:
            edges |= {e for s, nxt in zip(starts[:-1], starts[1:]) for e in range(nxt - 1, s + tile)}
        m = np.zeros(n - 1, dtype=bool)
        m[sorted(e for e in edges if 0 <= e < n - 1)] = True
        return m

    bx, by = border_mask(img.shape[-1]), border_mask(img.shape[-2])
    across = np.concatenate([dx[bx], dy[by]]).mean()
    inside = np.concatenate([dx[~bx], dy[~by]]).mean()
    return float(across / inside)

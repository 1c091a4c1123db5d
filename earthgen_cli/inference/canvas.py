"""Scene canvases for multi-step generation: the pixel and latent tile grids of one scene, and
arrays that live in memory-mapped files.

A joint sample is stepped as one scene (MultiDiffusion): every sampling step reads each tile's
latent from the canvas and writes the blended result into a second canvas, so the whole latent
scene must exist between steps. It lives in files under a temporary folder (np.memmap), so RAM
holds only the tiles of one batch whatever the area; the OS pages the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from earthgen_cli.inference.tiling import TileGrid, check_tiling

# (row, col, height, width) in scene pixels -> (C, height, width) float32 raw values, (height, width) validity
WindowReader = Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SceneTile:
    y: int  # top-left in scene pixels
    x: int
    weight_px: np.ndarray  # (tile_h, tile_w) pixel blend weight (sums to 1 over tiles)
    weight_lat: np.ndarray  # (tile_h/f, tile_w/f) latent blend weight

    @property
    def origin(self) -> tuple[int, int]:
        return self.y, self.x


class SceneLayout:
    """A `height` x `width` scene padded up to a multiple of the model's tile multiple, with the
    pixel tile grid (origins on the model's grid, any overlap: see `tiling`) and the latent tile
    grid that is the same tiling `factor` times coarser. The canvases cover the padded scene;
    writers crop to the scene."""

    def __init__(self, height: int, width: int, factor: int, multiple: int, tile: int, overlap: int) -> None:
        check_tiling(tile, overlap, multiple)
        self.height, self.width, self.factor = height, width, factor
        self.pixel = TileGrid(height, width, tile, overlap, align=multiple)
        self.hp, self.wp = self.pixel.padded_height, self.pixel.padded_width
        self.latent = self.pixel.coarser(factor)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.latent.height, self.latent.width

    @property
    def tile_px(self) -> tuple[int, int]:
        return self.pixel.tile_h, self.pixel.tile_w

    @property
    def tile_lat(self) -> tuple[int, int]:
        return self.latent.tile_h, self.latent.tile_w

    def tiles(self) -> list[SceneTile]:
        pr, pc = self.pixel.row_weights(), self.pixel.col_weights()
        lr, lc = self.latent.row_weights(), self.latent.col_weights()
        return [SceneTile(y, x, np.outer(pr[i], pc[j]).astype(np.float32), np.outer(lr[i], lc[j]).astype(np.float32))
                for i, y in enumerate(self.pixel.row_starts) for j, x in enumerate(self.pixel.col_starts)]

    def batches(self, batch_size: int) -> Iterator[list[SceneTile]]:
        tiles = self.tiles()
        for lo in range(0, len(tiles), batch_size):
            yield tiles[lo : lo + batch_size]


class MemmapCanvas:
    """Named float32 arrays in files under `folder` (a temporary directory the caller owns)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.arrays: dict[str, np.memmap] = {}

    def array(self, name: str, shape: tuple[int, ...]) -> np.memmap:
        """A zero-filled array (a fresh sparse file reads as zeros)."""
        arr = np.memmap(os.path.join(self.folder, f"{name}.f32"), dtype=np.float32, mode="w+", shape=shape)
        self.arrays[name] = arr
        return arr


def zero(arr: np.ndarray, rows: int = 256) -> None:
    """Clear a canvas band by band (no whole-array temporaries)."""
    for r in range(0, arr.shape[-2], rows):
        arr[..., r : r + rows, :] = 0


def read_padded(read: Callable, bands: int, row: int, col: int, h: int, w: int, height: int,
                width: int) -> tuple[np.ndarray, np.ndarray]:
    """`read(row, col, h, w)` for the part of the window inside a `height` x `width` raster; the
    padding beyond its edges is 0 and invalid."""
    data = np.zeros((bands, h, w), dtype=np.float32)
    valid = np.zeros((h, w), dtype=bool)
    hh, ww = max(0, min(h, height - row)), max(0, min(w, width - col))
    if hh and ww:
        d, v = read(row, col, hh, ww)
        data[:, :hh, :ww] = d
        valid[:hh, :ww] = v
    return data, valid

"""The tile grid over a scene and its blend weights.

Tiles of side `tile` step by `tile - overlap`; the last tile of each axis is anchored to the scene
edge (it starts at `length - tile`). Each output pixel is a weighted average of the tiles that
cover it, with a raised-cosine (Hann) ramp across every overlap and weight 1 up to the scene edges.

A model whose latent grid is coarser than pixels (codec factor x patch = its tile multiple) needs
tile origins and sides on that grid, or its position-keyed noise and patches would not line up
across tiles. With `align` > 1 the step is rounded down to a multiple of `align` (the overlap only
grows) and the scene is treated as padded up to a multiple of `align`: the last tile is anchored to
that padded edge, so it may hang up to `align - 1` pixels past the scene. Those pixels are read as
padding and cropped away; the weights sum to 1 over the padded length, hence over the scene too.

The weights are separable (row weight x column weight) and each 1-D weight is a multiple of
2**-12 whose sum over the tiles covering a pixel is exactly 1. Their products are then multiples
of 2**-24 that also sum to exactly 1, and a float32 value times such a weight is exact in float64,
as are the partial sums. So blending identical contributions reproduces them bit for bit, which is
what lets `--model identity` copy a scene exactly through the tiler.

One grid and one set of weights, three accumulators: translate, joint/inpaint/extend and
evaluate's tiled scoring all place tiles and weigh them with `TileGrid`, but they sum different
things in different places, and a single accumulator would have to be all three at once:
- `stripe_blend.StripeBand` (translate): final pixels of any raster size, streamed to the output
  GeoTIFF stripe by stripe (memory flat in the scene size), exact for every output dtype up to
  64-bit integers (value splitting), once per scene.
- `multidiffusion` (joint, inpaint, extend): latents, re-blended after every sampling step on a
  memory-mapped canvas, because the next step must start from the averaged latent (MultiDiffusion);
  nothing is written until the last step is decoded.
- `evaluate.runner.translator_method`: a batch of 64 px chips held in memory and scored there; no
  file to stream to, and float scores need no exact integer path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earthgen_cli.errors import EarthgenError

WEIGHT_BITS = 12
_Q = float(1 << WEIGHT_BITS)


# --tile of a model without a native tile (the crop side it was trained on): the translate engine's
# (analytic translators) and generation's (joint, inpaint, extend: latent canvases are larger)
TRANSLATE_TILE = 512
GENERATE_TILE = 256
MAX_DEFAULT_OVERLAP = 64  # px


def resolve_tiling(tile: int | None, overlap: int | None, native: int | None,
                   fallback: int | None) -> tuple[int | None, int]:
    """--tile/--overlap as given, else the model's native tile (what it was trained at), else
    `fallback` (None: no tiling, overlap 0); the overlap defaults to a quarter of the tile, at
    most 64 px. The one tile-default policy of translate, evaluate, joint, inpaint and extend."""
    tile = tile if tile is not None else (native or fallback)
    if overlap is None:
        overlap = 0 if tile is None else min(MAX_DEFAULT_OVERLAP, tile // 4)
    return tile, overlap


def check_tile_multiple(tile: int, multiple: int) -> None:
    """Refuse a --tile that is off the model's grid, naming the nearest sizes that are on it.

    Refused rather than rounded, as rasterio/GDAL refuse a GeoTIFF block size that is not a
    multiple of 16: the user asked for a size, and tile size changes the result."""
    if tile % multiple:
        lower, upper = tile // multiple * multiple, (tile // multiple + 1) * multiple
        near = f"{lower} or {upper}" if lower >= 16 else f"{upper}"
        raise EarthgenError(f"--tile {tile} must be a multiple of {multiple} for this model "
                            f"(codec factor x patch); try {near}")


def check_tiling(tile: int, overlap: int, multiple: int, minimum: int = 1) -> None:
    """Refuse a --tile below `minimum` or off the model's grid, and an --overlap outside [0, tile/2):
    the user-facing check of every command that tiles (TileGrid's own checks guard the library)."""
    if tile < minimum:
        raise EarthgenError(f"--tile must be positive, got {tile}" if minimum <= 1
                            else f"--tile must be at least {minimum}, got {tile}")
    check_tile_multiple(tile, multiple)
    if not 0 <= 2 * overlap < tile:
        raise EarthgenError(f"--overlap must be >= 0 and less than half of --tile ({tile}), got {overlap}")


def padded_length(length: int, align: int) -> int:
    """`length` rounded up to a multiple of `align`."""
    return -(-length // align) * align


def aligned_step(tile: int, overlap: int, align: int) -> int:
    """`tile - overlap` rounded down to a multiple of `align` (at least `align`)."""
    return max(align, (tile - overlap) // align * align)


def axis_starts(length: int, tile: int, overlap: int, align: int = 1, step: int | None = None) -> list[int]:
    """Tile start offsets along one axis: a regular step, the last one anchored to the edge of the
    scene padded to a multiple of `align` (all starts are then multiples of `align`)."""
    length = padded_length(length, align)
    if length <= tile:
        return [0]
    step = aligned_step(tile, overlap, align) if step is None else step
    starts = list(range(0, length - tile, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _ramp(n: int) -> np.ndarray:
    # Strictly positive half-Hann ramp over n pixels: rises from ~0 to ~1.
    k = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / n)


def axis_weights(length: int, tile: int, starts: list[int], overlap: int) -> list[np.ndarray]:
    """Per-tile 1-D weights (each of length min(tile, length)) that sum to exactly 1 at every pixel."""
    size = min(tile, length)
    raw = []
    for i, s in enumerate(starts):
        w = np.ones(size, dtype=np.float64)
        if overlap > 0 and len(starts) > 1:
            if i > 0:  # ramps only where a neighbour overlaps: weight 1 up to the scene edge
                ramp_len = min(overlap, starts[i - 1] + size - s)
                if ramp_len > 0:
                    w[:ramp_len] = np.minimum(w[:ramp_len], _ramp(ramp_len))
            if i < len(starts) - 1:
                ramp_len = min(overlap, s + size - starts[i + 1])
                if ramp_len > 0:
                    w[size - ramp_len:] = np.minimum(w[size - ramp_len:], _ramp(ramp_len)[::-1])
        raw.append(w)
    total = np.zeros(length, dtype=np.float64)
    for s, w in zip(starts, raw):
        total[s : s + size] += w
    # Quantise each share down to a multiple of 2**-12; the last tile covering a pixel takes the
    # exact remainder, so every pixel's weights sum to exactly 1.
    assigned = np.zeros(length, dtype=np.float64)
    last_cover = np.full(length, -1)
    for i, s in enumerate(starts):
        last_cover[s : s + size] = i
    out = []
    for i, (s, w) in enumerate(zip(starts, raw)):
        share = np.floor(w / total[s : s + size] * _Q) / _Q
        is_last = last_cover[s : s + size] == i
        share = np.where(is_last, 1.0 - assigned[s : s + size], share)
        assigned[s : s + size] += share
        out.append(share)
    return out


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a `height` x `width` scene (see the module docstring).

    `align`: tile origins and sides are multiples of it (a model's tile multiple); tiles then cover
    the scene padded to `padded_height` x `padded_width`. `step`: distance between tile origins,
    by default `tile - overlap` rounded down to a multiple of `align` (see `coarser`).
    """

    height: int
    width: int
    tile: int
    overlap: int
    align: int = 1
    step: int | None = None

    def __post_init__(self) -> None:
        if self.tile < 1 or self.align < 1:
            raise ValueError(f"tile and align must be positive, got {self.tile} and {self.align}")
        if self.tile % self.align:
            raise ValueError(f"tile {self.tile} is not a multiple of align {self.align}")
        if not 0 <= 2 * self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile/2), got {self.overlap} for tile {self.tile}")
        if self.step is not None and (self.step % self.align or not 0 < self.step <= self.tile):
            raise ValueError(f"step {self.step} must be a multiple of {self.align} in (0, tile]")

    @property
    def tile_step(self) -> int:
        return aligned_step(self.tile, self.overlap, self.align) if self.step is None else self.step

    # per axis (rows: height, columns: width): the padded length, the tile side, the tile origins
    padded_height = property(lambda self: padded_length(self.height, self.align))
    padded_width = property(lambda self: padded_length(self.width, self.align))
    tile_h = property(lambda self: min(self.tile, self.padded_height))
    tile_w = property(lambda self: min(self.tile, self.padded_width))
    row_starts = property(lambda self: axis_starts(self.height, self.tile, self.overlap, self.align, self.tile_step))
    col_starts = property(lambda self: axis_starts(self.width, self.tile, self.overlap, self.align, self.tile_step))

    def row_weights(self) -> list[np.ndarray]:
        return axis_weights(self.padded_height, self.tile, self.row_starts, self.overlap)

    def col_weights(self) -> list[np.ndarray]:
        return axis_weights(self.padded_width, self.tile, self.col_starts, self.overlap)

    def coarser(self, factor: int) -> "TileGrid":
        """The same tiling on a grid `factor` times coarser (a latent grid): the padded scene,
        origins and tile sides divided by `factor`, so tile k here is tile k there."""
        if self.align % factor:
            raise ValueError(f"align {self.align} is not a multiple of factor {factor}")
        return TileGrid(self.padded_height // factor, self.padded_width // factor, self.tile // factor,
                        self.overlap // factor, self.align // factor, self.tile_step // factor)

    def weight(self, row: int, col: int) -> np.ndarray:
        """(tile_h, tile_w) 2-D blend weight of one tile (tests and illustrations)."""
        return np.outer(self.row_weights()[row], self.col_weights()[col])

    def stripes(self, target_width: int, align: int) -> list["Stripe"]:
        """Vertical stripes that bound memory by a stripe instead of the scene width.

        Every tile column belongs to exactly one stripe (groups of about `target_width` pixels).
        Stripe k accumulates columns [x0, x_end) and writes [x0, x_write); x0 and x_write sit on
        multiples of `align` (the output block width) so every output block is written by one
        stripe. Columns [x_write, x_end) also receive the next stripe's tiles: their partial sums
        are handed over to it (`carry_width` columns).
        """
        cols = self.col_starts
        groups, first = [], 0
        for c in range(1, len(cols)):
            if cols[c] - cols[first] >= target_width:
                groups.append((first, c))
                first = c
        groups.append((first, len(cols)))
        x0s = [0] + [(cols[a] // align) * align for a, _ in groups[1:]]
        out = []
        for k, (a, b) in enumerate(groups):
            last = k == len(groups) - 1
            x_end = self.width if last else min(self.width, cols[b - 1] + self.tile_w)
            x_write = self.width if last else x0s[k + 1]
            out.append(Stripe(x0s[k], x_write, x_end, tuple(range(a, b))))
        return out


@dataclass(frozen=True)
class Stripe:
    x0: int  # first accumulated (and written) column
    x_write: int  # columns [x0, x_write) are written by this stripe
    x_end: int  # columns [x0, x_end) are accumulated
    tile_cols: tuple[int, ...]

    @property
    def width(self) -> int:
        return self.x_end - self.x0

    @property
    def carry_width(self) -> int:
        return self.x_end - self.x_write

"""Exact blending of one stripe: the accumulator that sums weighted tile outputs and writes them.

`StripeBand` holds the weighted sums of one tile row's band of a stripe, adds each tile's output
times its blend weight, and when rows are final adds the previous stripe's carry, writes them by
whole output blocks and hands its own carry on (`Carry`, a scratch file). The blend weights are
dyadic fractions (`tiling`), so with the accumulator dtype and the value splitting here
(`accumulator_dtype`, `exact_parts`, `combine_parts`) identical contributions blend back to
themselves bit for bit, for every output dtype up to float64 and 64-bit integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earthgen_cli.io.geotiff_writer import GeoTiffWriter
from earthgen_cli.io.raster import Window
from earthgen_cli.modalities import cast_to_dtype, dtype_info, move_off_nodata


def accumulator_dtype(out_dtype: str) -> type:
    """float32 suffices for outputs of at most 16-bit integers: each blended value is within
    ~0.02 of the exact weighted sum (4 contributions, 2**-24 relative error each, values below
    2**16), so rounding to the nearest integer gives the exact result; identity stays bit-exact.
    Float and wider integer outputs accumulate in float64: float32 values times the 2**-24 dyadic
    weights, and their partial sums, are exact there; 32-bit integers are within 2**-20 of the
    exact sum, so rounding restores them; float64 values are split in two and 64-bit integers in
    three (`exact_parts`)."""
    info = dtype_info(out_dtype)
    small_int = info.is_integer and info.hi - info.lo <= 65535
    return np.float32 if small_int else np.float64


_HIGH_BITS = np.uint64(0xFFFF_FFFF_F800_0000)  # sign, exponent and the top 25 of 52 mantissa bits
_INT_SHIFT = 21  # 64-bit integers as three parts of 22, 21 and 21 bits: each times a weight is exact
_INT_MASK = (1 << _INT_SHIFT) - 1


def part_count(out_dtype: str) -> int:
    """How many addends `exact_parts` splits a value of `out_dtype` into."""
    dt = np.dtype(out_dtype)
    if dt == np.float64:
        return 2
    return 3 if dt.kind in "iu" and dt.itemsize == 8 else 1


def exact_parts(values: np.ndarray, parts: int) -> tuple[np.ndarray, ...]:
    """`values` as `parts` addends whose products with a blend weight (24 significant bits) are
    exact in float64, so that blending identical contributions gives them back bit for bit:
    - parts=1: itself;
    - parts=2 (float64 outputs): its top 26 significant bits and the rest (at most 27), for values
      of magnitude above 2**-960 (below, the products lose bits);
    - parts=3 (int64/uint64 outputs): for integer tiles the low 21 bits, the next 21 and the top
      22 (arithmetic shift, so signed); `combine_parts` puts them back together in integers.
      A float tile (a model's output) goes whole into the low part."""
    if parts == 1:
        return (values,)
    v = np.asarray(values)
    if parts == 3:
        if v.dtype.kind not in "iu":
            zero = np.zeros_like(v, dtype=np.float64)
            return v.astype(np.float64, copy=False), zero, zero
        mask = v.dtype.type(_INT_MASK)
        return ((v & mask).astype(np.float64), ((v >> _INT_SHIFT) & mask).astype(np.float64),
                (v >> (2 * _INT_SHIFT)).astype(np.float64))
    v = v.astype(np.float64, copy=False)
    high = (v.view(np.uint64) & _HIGH_BITS).view(np.float64)
    return high, v - high


def combine_parts(acc: np.ndarray, out_dtype: str, nodata: float | None) -> np.ndarray:
    """Blended sums of `exact_parts` addends, (parts, ...) -> values of `out_dtype` (rounded in place).
    64-bit integers are put together in integer arithmetic: float64 cannot hold them above 2**53."""
    if acc.shape[0] == 3:
        dt = np.dtype(out_dtype)
        info = np.iinfo(dt)
        # the largest float64 values inside the integer range (float(info.max) itself is outside it)
        lo, hi = float(info.min), np.nextafter(float(info.max), 0.0)
        low = np.clip(np.rint(acc[0], out=acc[0]), lo, hi, out=acc[0]).astype(dt)
        out = low + (np.rint(acc[1]).astype(dt) << dt.type(_INT_SHIFT)) \
            + (np.rint(acc[2]).astype(dt) << dt.type(2 * _INT_SHIFT))
        move_off_nodata(out, nodata, dtype_info(dt))
        return out
    total = acc[0]
    for p in range(1, acc.shape[0]):
        total += acc[p]
    return cast_to_dtype(total, out_dtype, nodata, overwrite_input=True)


class StripeBand:
    """Weighted sums for rows [y0, y0 + tile) of one stripe, written out row band by row band.

    Partial sums of the columns the next stripe also covers go to a scratch file (sequentially,
    one record per row band) and are added back when the next stripe flushes the same rows, so
    memory does not depend on the scene's width or height. The validity mask is per band
    (`mask_bands` = bands) or one for all bands (`mask_bands` = 1).
    """

    def __init__(self, bands: int, tile_h: int, stripe, y0: int, carry_in, carry_out,
                 writer: GeoTiffWriter, out_dtype: str, nodata: tuple[float | None, float | None],
                 height: int, block: int, mask_bands: int = 1) -> None:
        self.stripe = stripe
        self.tile_h = tile_h
        self.y0 = y0
        self.parts = part_count(out_dtype)
        self.acc = np.zeros((self.parts, bands, tile_h, stripe.width), dtype=accumulator_dtype(out_dtype))
        self.valid = np.zeros((mask_bands, tile_h, stripe.width), dtype=bool)
        self._weighted: np.ndarray | None = None  # reused (C, th, tw) product buffer
        self.height = height
        self.stage = np.empty((bands, block, stripe.x_write - stripe.x0), dtype=out_dtype)
        self.stage_y0 = 0
        self.carry_in, self.carry_out = carry_in, carry_out
        self.writer, self.out_dtype = writer, out_dtype
        self.nodata, self.fill = nodata  # declared nodata, value written at invalid pixels

    def _stage_rows(self, out: np.ndarray, y: int) -> None:
        """Collect final rows into whole output block rows, so each block is written once, whole
        (no read-modify-write of compressed blocks, no dependence on GDAL's cache)."""
        n, pos = out.shape[1], 0
        while pos < n:
            at = y + pos - self.stage_y0
            take = min(n - pos, self.stage.shape[1] - at)
            self.stage[:, at : at + take] = out[:, pos : pos + take]
            pos += take
            if at + take == self.stage.shape[1] or y + pos == self.height:
                self.writer.write(self.stage[:, : at + take],
                                  Window(self.stripe.x0, self.stage_y0, self.stage.shape[2], at + take))
                self.stage_y0 += self.stage.shape[1]

    def add(self, tile_out: np.ndarray, weight: np.ndarray, valid: np.ndarray, y: int, x: int) -> None:
        """`valid`: (mask_bands, h, w)."""
        ys = slice(y - self.y0, y - self.y0 + tile_out.shape[1])
        xs = slice(x - self.stripe.x0, x - self.stripe.x0 + tile_out.shape[2])
        if self._weighted is None or self._weighted.shape != tile_out.shape:
            self._weighted = np.empty(tile_out.shape, dtype=self.acc.dtype)
        for p, part in enumerate(exact_parts(tile_out, self.parts)):
            np.multiply(part, weight, out=self._weighted, casting="unsafe")
            self.acc[p, :, ys, xs] += self._weighted
        self.valid[:, ys, xs] = valid

    def flush(self, y_end: int) -> None:
        """Rows [y0, y_end) are final: add the previous stripe's carry, write, hand on ours."""
        n, st = y_end - self.y0, self.stripe
        acc, valid = self.acc[:, :, :n], self.valid[:, :n]
        if self.carry_in is not None:
            cw = self.carry_in.width
            head = acc[..., :cw]
            head += np.fromfile(self.carry_in.fh, dtype=acc.dtype, count=head.size).reshape(head.shape)
            valid[..., :cw] |= np.fromfile(self.carry_in.fh, dtype=bool, count=valid[..., :cw].size
                                           ).reshape(valid[..., :cw].shape)
        w = st.x_write - st.x0
        if self.carry_out is not None:
            np.ascontiguousarray(acc[..., w:]).tofile(self.carry_out.fh)
            np.ascontiguousarray(valid[..., w:]).tofile(self.carry_out.fh)
        # These rows are done with: sum the parts and round in place (no float temporaries).
        out = combine_parts(acc[:, :, :, :w], self.out_dtype, self.nodata)
        if self.fill is not None:
            out[np.broadcast_to(~valid[:, :, :w], out.shape)] = self.fill
        self._stage_rows(out, self.y0)
        # Rows below y_end carry over to the band of the next tile row.
        self.acc[:, :, : self.tile_h - n] = self.acc[:, :, n:].copy()
        self.acc[:, :, self.tile_h - n :] = 0
        self.valid[:, : self.tile_h - n] = self.valid[:, n:].copy()
        self.valid[:, self.tile_h - n :] = False
        self.y0 = y_end


@dataclass
class Carry:
    fh: object
    width: int

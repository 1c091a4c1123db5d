"""Where the chips of a scene lie on its reference grid, and which chips are kept.

Chips are `chip` x `chip` windows every `stride` pixels; when the scene is not a whole number of
strides the last row/column is anchored to the scene edge (overlapping its neighbour) so the whole
scene is covered. A chip is dropped when any modality has more than `max_nodata` of its pixels
missing, or when any image modality is blank: its largest per-band standard deviation, in the
registry's default model space (range -> [-1, 1], so dB, reflectance and 8-bit compare alike), is
below `min_std`. Rendered OSM maps are exempt from the blank test: a flat map is a valid map. So are
chips of scenes with content flags (dataset config: manifest or `flags:`): their low information
(open water with NIR clipped at 1, snow) is known and declared, they are real data for training,
and chips.csv marks them for evaluation to leave out. The nodata test applies to every chip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earthgen_cli.modalities import default_scaling


@dataclass(frozen=True)
class ChipWindow:
    row: int
    col: int
    size: int


def chip_offsets(length: int, chip: int, stride: int) -> list[int]:
    if length < chip:
        return []
    offs = list(range(0, length - chip + 1, stride))
    if offs[-1] != length - chip:
        offs.append(length - chip)  # anchor the last chip to the edge
    return offs


def chip_windows(width: int, height: int, chip: int, stride: int) -> list[ChipWindow]:
    return [ChipWindow(r, c, chip) for r in chip_offsets(height, chip, stride)
            for c in chip_offsets(width, chip, stride)]


def chip_bounds(transform: tuple[float, ...], w: ChipWindow) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a chip on a north-up grid."""
    a, _, c, _, e, f = transform
    x0, x1 = c + w.col * a, c + (w.col + w.size) * a
    y0, y1 = f + w.row * e, f + (w.row + w.size) * e
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


@dataclass(frozen=True)
class ChipFilter:
    max_nodata: float = 0.05
    min_std: float = 0.01

    def reason_to_drop(self, name: str, dtype: str, data: np.ndarray,
                       flagged: bool = False) -> str | None:
        """None to keep, else 'nodata' or 'blank'. `data` is (C, H, W) float32, NaN = nodata;
        `flagged`: the chip's scene has content flags (no blank test)."""
        valid = np.isfinite(data)
        nodata = 1.0 - valid.all(axis=0).mean()
        if nodata > self.max_nodata:
            return "nodata"
        if name == "osm" or flagged:
            return None
        scaling = default_scaling(name, data.shape[0], dtype)
        stds = []
        for b in range(data.shape[0]):
            v = data[b][valid[b]]
            span = scaling.high[b] - scaling.low[b]
            stds.append(float(v.std()) * 2.0 / span if v.size > 1 else 0.0)
        return "blank" if max(stds) < self.min_std else None

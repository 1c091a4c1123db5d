"""`grid.png`: for a few chips per direction, source | each method | target, side by side.

Images come in on the unit scale (metrics.to_unit), so what the grid shows is what was scored.
Band choice for display: 3 bands as RGB, 1 band as grey, 2-band SAR as (VV, VH, VV), and 6-band
MS as the SWIR false colour (B12, B8A, B05), the usual way to look at those bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_TILE = 128  # chips are upscaled (nearest) to at least this many pixels a side
HEADER = 18  # pixels of text above each section's row of tiles
GAP = 2
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class GridSection:
    direction: str  # "sar:rgb"
    columns: tuple[str, ...]  # ("source sar", "unified", "mean", ..., "target rgb")
    chips: tuple[tuple[np.ndarray, ...], ...]  # per chip, one (C, H, W) unit-scale image per column

    def __post_init__(self) -> None:
        for row in self.chips:
            if len(row) != len(self.columns):
                raise ValueError(f"{self.direction}: a chip has {len(row)} images for "
                                 f"{len(self.columns)} columns")


def display_rgb(unit: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8."""
    c = unit.shape[0]
    bands = {1: (0, 0, 0), 2: (0, 1, 0), 3: (0, 1, 2)}.get(c, (c - 1, c // 2, 0))
    rgb = np.stack([unit[b] for b in bands], axis=-1)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class GridLayout:
    size: tuple[int, int]  # (width, height) of the PNG
    boxes: dict[tuple[int, int, int], tuple[int, int, int, int]]  # (section, chip, column) -> (x0, y0, x1, y1)


def write_grid(path: Path, sections: Sequence[GridSection]) -> GridLayout:
    """Draw the sections one under the other; returns where every tile went."""
    if not sections or not any(s.chips for s in sections):
        raise ValueError("grid needs at least one chip")
    side = max(max(img.shape[-2:]) for s in sections for row in s.chips for img in row)
    scale = max(1, math.ceil(MIN_TILE / side))
    tile = side * scale
    n_cols = max(len(s.columns) for s in sections)
    width = n_cols * (tile + GAP) + GAP
    height = sum(HEADER + len(s.chips) * (tile + GAP) for s in sections) + GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    boxes: dict[tuple[int, int, int], tuple[int, int, int, int]] = {}
    y = GAP
    for si, section in enumerate(sections):
        for ci, title in enumerate(section.columns):
            # ASCII "->": Pillow's built-in font has no arrow glyph
            label = f"{section.direction.replace(':', '->')}: {title}" if ci == 0 else title
            draw.text((GAP + ci * (tile + GAP) + 2, y + 2), label, fill=(0, 0, 0), font=font)
        y += HEADER
        for ri, row in enumerate(section.chips):
            for ci, img in enumerate(row):
                pixels = display_rgb(img).repeat(scale, axis=0).repeat(scale, axis=1)
                x0 = GAP + ci * (tile + GAP)
                canvas.paste(Image.fromarray(pixels), (x0, y))
                boxes[(si, ri, ci)] = (x0, y, x0 + pixels.shape[1], y + pixels.shape[0])
            y += tile + GAP
    path = Path(path)
    canvas.save(path, format="PNG")
    return GridLayout((width, height), boxes)

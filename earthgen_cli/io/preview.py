"""Quicklook PNGs: rasters side by side, decimated on read (never the whole scene in memory).

Each panel shows its first three bands as RGB (one band as grey, two-band SAR as VV, VH, VV),
each stretched between its 2nd and 98th percentiles of valid pixels, so uint16 reflectance,
dB and 8-bit maps all look like something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.enums import Resampling

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.publish import staged_file
from earthgen_cli.io.raster import open_raster

GAP = 8  # pixels between panels


def _panel(path: str, size: int, select: Sequence[int] | None = None) -> np.ndarray:
    """(h, w, 3) uint8 quicklook of a raster (or of its bands `select`), longest side `size`."""
    with open_raster(path, allow_no_crs=True) as src:
        scale = min(1.0, size / max(src.width, src.height))
        h, w = max(1, round(src.height * scale)), max(1, round(src.width * scale))
        avail = list(select) if select else list(range(1, src.count + 1))
        bands = avail[:3] if len(avail) >= 3 else (avail + avail[:1] if len(avail) == 2 else avail * 3)
        data = src.read(bands, out_shape=(3, h, w), resampling=Resampling.average,
                        masked=True).astype(np.float64)
    out = np.zeros((h, w, 3), dtype=np.uint8)
    for i in range(3):
        band = data[i]
        valid = band.compressed() if np.ma.isMaskedArray(band) else band.ravel()
        valid = valid[np.isfinite(valid)]
        if valid.size == 0:
            continue
        lo, hi = np.percentile(valid, [2, 98])
        scaled = np.clip((np.ma.filled(band, lo) - lo) / max(hi - lo, 1e-12), 0, 1)
        out[:, :, i] = np.nan_to_num(scaled * 255).astype(np.uint8)
    return out


def write_preview(paths: Sequence[str], out: str, size: int = 512,
                  bands: Sequence[Sequence[int] | None] | None = None, overwrite: bool = False) -> None:
    """Panels of `paths` (each optionally restricted to `bands[i]`) left to right into the PNG
    `out`, written atomically (io.publish's rule: an existing `out` is replaced only with `overwrite`)."""
    from PIL import Image

    panels = [_panel(p, size, bands[i] if bands else None) for i, p in enumerate(paths)]
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + GAP * (len(panels) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for p in panels:
        canvas[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + GAP
    target = Path(out)
    if not target.resolve().parent.is_dir():
        raise EarthgenError(f"{out}: folder {target.resolve().parent} does not exist")
    with staged_file(target, overwrite, suffix=".png") as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


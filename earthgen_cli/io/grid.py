"""Output grids for generation: a bounding box -> a north-up pixel grid in a projected CRS.

The grid's origin is snapped to a multiple of the pixel size, so two requests over neighbouring
boxes at the same GSD share pixel edges, and its bounds cover the box (in the output CRS) with less
than one pixel to spare on every side. `OutputGrid` has the attributes rasterio readers have (crs,
transform, width, height, name), so the atomic GeoTIFF writer and `SourceRaster.warp_to` accept it
as their reference grid without knowing it is not an opened raster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.raster import pixel_size_m
from earthgen_cli.io.scene_inputs import Grid

DEFAULT_MAX_PIXELS = 100_000_000  # per modality; a typo'd GSD or bbox would otherwise fill the disk


@dataclass(frozen=True)
class OutputGrid:
    crs: CRS
    transform: Affine
    width: int
    height: int
    name: str = "the output grid"

    @property
    def gsd(self) -> float:
        return abs(self.transform.a)

    @property
    def gsd_m(self) -> float:
        """Metres per pixel (`io.raster.pixel_size_m`: geodesic for a geographic CRS); the grid's
        own units when it has no CRS."""
        m = pixel_size_m(self.crs, self.transform, self.height, self.width)
        return self.gsd if m is None else m

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    def as_grid(self) -> Grid:
        """The dataset layer's plain grid (WKT + tuple), e.g. for rendering OSM onto it."""
        return Grid(self.crs.to_wkt(), tuple(self.transform)[:6], self.width, self.height)

    def extended(self, north: int, south: int, east: int, west: int) -> "OutputGrid":
        """The same grid grown by whole pixels on each side: old pixel (r, c) is new (r + north, c + west)."""
        t = self.transform
        moved = Affine(t.a, t.b, t.c - west * t.a - north * t.b, t.d, t.e, t.f - west * t.d - north * t.e)
        return OutputGrid(self.crs, moved, self.width + west + east, self.height + north + south, self.name)

    @classmethod
    def of(cls, src) -> "OutputGrid":
        return cls(src.crs, src.transform, src.width, src.height, getattr(src, "name", "the input grid"))


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'W,S,E,N' -> floats; inverted or empty boxes are errors, never silently swapped."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise EarthgenError(f"--bbox {text!r}: expected four numbers W,S,E,N") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise EarthgenError(f"--bbox {text!r}: values must be finite")
    if w >= e or s >= n:
        what = "empty" if (w == e or s == n) else "inverted"
        raise EarthgenError(f"--bbox {text!r}: {what} box; W must be < E and S < N")
    return w, s, e, n


def _crs(text: str, option: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except Exception:
        raise EarthgenError(f"{option} {text!r}: not a CRS (use e.g. EPSG:4326)") from None


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 UTM zone of a point (no Norway/Svalbard exceptions: the plain 6-degree zones)."""
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def bbox_grid(bbox: str, gsd: float, bbox_crs: str = "EPSG:4326", crs: str = "utm",
              max_pixels: int = DEFAULT_MAX_PIXELS) -> OutputGrid:
    """The grid of `gsd` metres (output CRS units) per pixel covering `bbox` (in `bbox_crs`)."""
    from rasterio.warp import transform_bounds

    if not (gsd > 0 and math.isfinite(gsd)):
        raise EarthgenError(f"--gsd must be a positive number of metres per pixel, got {gsd}")
    w, s, e, n = parse_bbox(bbox)
    src = _crs(bbox_crs, "--bbox-crs")
    if src.is_geographic and (w < -180 or e > 180 or s < -90 or n > 90):
        raise EarthgenError(f"--bbox {bbox!r}: outside longitude -180..180 / latitude -90..90")
    if str(crs).lower() == "utm":
        lo_w, lo_s, lo_e, lo_n = transform_bounds(src, "EPSG:4326", w, s, e, n, densify_pts=21)
        dst = utm_crs((lo_w + lo_e) / 2.0, (lo_s + lo_n) / 2.0)
    else:
        dst = _crs(crs, "--crs")
    if dst.is_geographic:
        raise EarthgenError(f"--crs {crs!r}: a geographic CRS has no metres; use a projected one or utm")
    try:
        left, bottom, right, top = transform_bounds(src, dst, w, s, e, n, densify_pts=21)
    except Exception as exc:
        raise EarthgenError(f"--bbox {bbox!r}: cannot be projected to {dst} ({exc})") from None
    unit = dst.linear_units_factor[1] if dst.linear_units_factor else 1.0
    px = gsd / unit  # GSD is in metres, the transform in the CRS's linear unit
    x0, y1 = math.floor(left / px) * px, math.ceil(top / px) * px
    width, height = math.ceil((right - x0) / px - 1e-9), math.ceil((y1 - bottom) / px - 1e-9)
    if width * height > max_pixels:
        raise EarthgenError(f"--bbox at --gsd {gsd}: {width} x {height} = {width * height:,} pixels exceeds "
                            f"--max-pixels {max_pixels:,}")
    return OutputGrid(dst, Affine(px, 0.0, x0, 0.0, -px, y1), max(width, 1), max(height, 1))


def footprint(src, grid: "OutputGrid", label: str):
    """(row, col, h, w) -> validity of the grid pixels whose centres fall inside the source's
    bounds (projected to the grid CRS): a warp fills the area beyond a source without nodata with
    zeros that would otherwise pass for data."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
    gl, gb, gr, gt = grid.bounds
    if right <= gl or left >= gr or top <= gb or bottom >= gt:
        raise EarthgenError(f"{label}: does not overlap the output grid")
    px = grid.gsd

    def inside(r: int, c: int, h: int, w: int) -> np.ndarray:
        x = gl + (np.arange(c, c + w) + 0.5) * px
        y = gt - (np.arange(r, r + h) + 0.5) * px
        return ((y >= bottom) & (y <= top))[:, None] & ((x >= left) & (x <= right))[None, :]

    return inside

"""Bringing every modality of a scene onto one reference grid, read window by window.

The reference grid is the finest input grid (or `--crs` / `--gsd`), cropped to the ground that
every modality covers. A modality whose grid is the reference grid up to a whole-pixel offset is
read directly; any other (sub-pixel shift, other resolution, other CRS) goes through a GDAL
WarpedVRT with the modality's resampling (nearest for osm), so only the window asked for is warped
and memory does not grow with the scene.
"""

from __future__ import annotations

import math
import warnings
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_config import SourceKind
from earthgen_cli.io.scene_inputs import Grid, ModalityInput, SceneInput
from earthgen_cli.modalities import get_modality, linear_to_db

_EPS = 1e-6  # of a pixel: below this two grids are the same grid


@dataclass(frozen=True)
class GridOffset:
    """How far a modality's grid is from the reference grid (reported per scene)."""

    modality: str
    shift_px: float  # sub-pixel misregistration of the origins, in reference pixels (0..0.71)
    scale: float  # modality GSD / reference GSD
    same_crs: bool
    warped: bool  # False: read directly (same grid up to whole pixels)


def _ground_bounds(grid: Grid, crs_wkt: str | None) -> tuple[float, float, float, float]:
    if grid.crs is None or crs_wkt is None or grid.crs == crs_wkt:
        return grid.bounds
    from rasterio.warp import transform_bounds

    return transform_bounds(grid.crs, crs_wkt, *grid.bounds, densify_pts=21)


def reference_grid(scene: SceneInput, crs: str | None = None, gsd: float | None = None) -> Grid:
    """Finest input grid (or the requested CRS/GSD) over the ground all modalities cover."""
    if scene.kind == SourceKind.image_pairs:  # checked to share one pixel grid, no geometry
        return scene.modalities[0].grid
    if not scene.modalities:  # OSM only: the data's extent on its declared grid
        from earthgen_cli.io.osm_render import osm_grid

        return osm_grid(scene.osm.path, scene.osm.file_format, crs or scene.osm.crs,
                        gsd or scene.osm.gsd)
    finest = min(scene.modalities, key=lambda m: m.grid.gsd)  # ties: first declared
    ref_crs = finest.grid.crs
    if crs is not None and ref_crs is not None:
        from rasterio.crs import CRS

        try:
            ref_crs = CRS.from_user_input(crs).to_wkt()
        except Exception:
            raise EarthgenError(f"--crs {crs!r} is not a CRS rasterio understands") from None
    boxes = [_ground_bounds(m.grid, ref_crs) for m in scene.modalities]
    left = max(b[0] for b in boxes)
    bottom = max(b[1] for b in boxes)
    right = min(b[2] for b in boxes)
    top = min(b[3] for b in boxes)
    if not (right > left and top > bottom):
        names = ", ".join(f"{m.name}={m.path}" for m in scene.modalities)
        raise EarthgenError(f"scene {scene.scene_id}: rasters do not overlap ({names})")
    a, _, c, _, e, f = finest.grid.transform
    if ref_crs == finest.grid.crs and gsd is None:
        # Snap inward onto the finest grid's own pixel lattice so its pixels are read unwarped.
        col0 = math.ceil((left - c) / a - _EPS)
        col1 = math.floor((right - c) / a + _EPS)
        row0 = math.ceil((top - f) / e - _EPS)
        row1 = math.floor((bottom - f) / e + _EPS)
        width, height = col1 - col0, row1 - row0
        origin = (c + col0 * a, f + row0 * e)
        res_x, res_y = a, e
    else:
        res = gsd if gsd is not None else _native_gsd_in(finest.grid, ref_crs)
        width = int(math.floor((right - left) / res + _EPS))
        height = int(math.floor((top - bottom) / res + _EPS))
        origin = (left, top)
        res_x, res_y = res, -res
    if width < 1 or height < 1:
        raise EarthgenError(f"scene {scene.scene_id}: rasters overlap by less than one pixel")
    return Grid(ref_crs, (res_x, 0.0, origin[0], 0.0, res_y, origin[1]), width, height)


def _native_gsd_in(grid: Grid, crs_wkt: str | None) -> float:
    if grid.crs == crs_wkt or crs_wkt is None:
        return grid.gsd
    from rasterio.warp import calculate_default_transform

    t, _, _ = calculate_default_transform(grid.crs, crs_wkt, grid.width, grid.height, *grid.bounds)
    return math.sqrt(abs(t.a * t.e - t.b * t.d))


def grid_offset(mod: ModalityInput, ref: Grid) -> GridOffset:
    same_crs = mod.grid.crs == ref.crs
    scale = mod.grid.gsd / ref.gsd
    if not same_crs:
        return GridOffset(mod.name, float("nan"), scale, False, True)
    a, _, c, _, e, f = ref.transform
    ma, _, mc, _, me, mf = mod.grid.transform
    dx = (mc - c) / a
    dy = (mf - f) / e
    frac = [abs(v - round(v)) for v in (dx, dy)]
    shift = math.hypot(*frac)
    same_res = abs(ma - a) <= _EPS * abs(a) and abs(me - e) <= _EPS * abs(e)
    warped = not (same_res and shift <= _EPS)
    return GridOffset(mod.name, shift, scale, True, warped)


def _resampling(mod: ModalityInput):
    from rasterio.enums import Resampling

    return Resampling[mod.spec.resampling or get_modality(mod.name).resampling]


class AlignedScene:
    """Open readers of every modality of a scene on its reference grid (a context manager).

    `read(name, row, col, size)` -> float32 (C, size, size) in the modality's units (SAR in dB),
    NaN where there is no data.
    """

    def __init__(self, scene: SceneInput, ref: Grid):
        self.scene = scene
        self.ref = ref
        self.offsets = {m.name: grid_offset(m, ref) for m in scene.modalities}
        self._stack = ExitStack()
        self._readers: dict[str, tuple] = {}

    def __enter__(self) -> "AlignedScene":
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
        from rasterio.vrt import WarpedVRT

        try:
            for mod in self.scene.modalities:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    src = self._stack.enter_context(rasterio.open(mod.path))
                off = self.offsets[mod.name]
                if off.warped:
                    vrt = self._stack.enter_context(WarpedVRT(
                        src, crs=self.ref.crs, transform=self.ref.affine(), width=self.ref.width,
                        height=self.ref.height, resampling=_resampling(mod), add_alpha=True,
                        src_nodata=mod.nodata))
                    self._readers[mod.name] = (mod, vrt, 0, 0)
                else:
                    a, _, c, _, e, f = self.ref.transform
                    ma, _, mc, _, me, mf = mod.grid.transform
                    # whole-pixel offset of the reference origin inside this file
                    col0 = int(round((c - mc) / ma))
                    row0 = int(round((f - mf) / me))
                    self._readers[mod.name] = (mod, src, row0, col0)
        except RasterioIOError as exc:
            self._stack.close()
            raise EarthgenError(f"scene {self.scene.scene_id}: cannot open for reading "
                                f"({str(exc).splitlines()[0]})") from None
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def read(self, name: str, row: int, col: int, size: int) -> np.ndarray:
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        mod, ds, row0, col0 = self._readers[name]
        window = Window(col0 + col, row0 + row, size, size)
        try:
            data = ds.read(list(mod.bands), window=window, out_dtype="float32")
            if self.offsets[name].warped:
                valid = ds.read_masks(mod.bands[0], window=window) > 0
            else:
                valid = ds.read_masks(list(mod.bands), window=window).min(axis=0) > 0
        except RasterioError as exc:
            detail = str(exc.__cause__ or exc).splitlines()[0]  # GDAL's own reason, if chained
            raise EarthgenError(f"scene {self.scene.scene_id}: cannot read {mod.path} "
                                f"(corrupt file? {detail})") from None
        data[:, ~valid] = np.nan
        if mod.nodata is not None and not math.isnan(mod.nodata):
            data[data == np.float32(mod.nodata)] = np.nan
        if mod.spec.units == "linear":
            data = linear_to_db(data)  # non-positive intensity -> NaN as well
        data[~np.isfinite(data)] = np.nan
        return data

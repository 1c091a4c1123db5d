"""Raster input: open and validate, windowed reads (the atomic GeoTIFF writer is in io.geotiff_writer).

Paths are anything rasterio opens (local files, VRTs, `/vsi*` paths); `-` is stdin (read whole into
memory, since a pipe cannot be seeked).
Every user mistake becomes an `EarthgenError` that names the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.geotiff_writer import TAG_PREFIX
from earthgen_cli.io.publish import STDIO, is_virtual
from earthgen_cli.io.scratch import temp_file
from earthgen_cli.io.vrt import refuse_unsafe_vrt
from earthgen_cli.modalities import get_modality, guess_modality

# GDAL's block cache is part of our memory footprint: keep it bounded so that peak memory does not
# grow with the scene (the default is 5% of RAM). The engine reads whole block rows itself and
# writes whole blocks, so it needs little.
GDAL_ENV = {"GDAL_CACHEMAX": 8}


def gdal_env() -> rasterio.Env:
    return rasterio.Env(**GDAL_ENV)


@contextlib.contextmanager
def open_raster(path: str, *, allow_no_crs: bool = False) -> Iterator[rasterio.DatasetReader]:
    """Open `path` for reading; `-` reads a whole raster from stdin.

    Raises EarthgenError for a missing file, a file GDAL cannot read as a raster, or (unless
    `allow_no_crs`) a raster without a coordinate reference system.
    """
    label = "<stdin>" if path == STDIO else path
    spool = None
    if path == STDIO:
        spool = _spool_stdin()
        path = str(spool)
    try:
        refuse_unsafe_vrt(path, label if spool is not None else None)
        if spool is None and not is_virtual(path):
            p = Path(path)
            if not p.exists():
                raise EarthgenError(f"{path}: no such file")
            if p.is_dir():
                raise EarthgenError(f"{path}: is a directory, expected a raster file")
        src = rasterio.open(path)
    except EarthgenError:
        if spool is not None:
            spool.unlink(missing_ok=True)
        raise
    except RasterioError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if spool is not None:
            spool.unlink(missing_ok=True)
        raise EarthgenError(f"{label}: not a raster GDAL can read ({first})") from None
    try:
        if src.count < 1 or src.width < 1 or src.height < 1:
            raise EarthgenError(f"{label}: raster has no bands or no pixels")
        if src.crs is None and not allow_no_crs:
            raise EarthgenError(
                f"{label}: raster has no CRS (coordinate reference system); "
                "assign one (gdal_edit.py -a_srs) or pass --allow-no-crs"
            )
        yield src
    finally:
        src.close()
        if spool is not None:
            spool.unlink(missing_ok=True)


STDIN_MAX_ENV = "EARTHGEN_STDIN_MAX_GB"


def _spool_stdin() -> Path:
    """stdin copied to a temporary file (a pipe cannot be seeked; GDAL reads by windows), capped at
    EARTHGEN_STDIN_MAX_GB (default 16) and at the free space of the temporary folder."""
    import tempfile

    try:
        cap = float(os.environ.get(STDIN_MAX_ENV, "16")) * 1e9
    except ValueError:
        raise EarthgenError(f"{STDIN_MAX_ENV}={os.environ[STDIN_MAX_ENV]!r}: expected a number of GB") from None
    folder = Path(tempfile.gettempdir())
    cap = min(cap, shutil.disk_usage(folder).free)
    spool = temp_file(folder, ".stdin.tif")
    total = 0
    try:
        with open(spool, "wb") as fh:
            while chunk := sys.stdin.buffer.read(1 << 20):
                total += len(chunk)
                if total > cap:
                    raise EarthgenError(f"<stdin>: more than {cap / 1e9:.1f} GB (the cap of {STDIN_MAX_ENV} or the "
                                        f"free space of {folder}); write it to a file and pass its path")
                fh.write(chunk)
        if total == 0:
            raise EarthgenError("<stdin>: empty input, expected a raster")
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    return spool


def parse_bands(text: str | None, path: str = "") -> tuple[int, ...] | None:
    """'4,3,2' -> (4, 3, 2) (1-based, as GDAL numbers bands)."""
    if text is None or text == "":
        return None
    try:
        bands = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise EarthgenError(f"{path or '--bands'}: bad band list {text!r}, expected e.g. 4,3,2") from None
    if any(b < 1 for b in bands):
        raise EarthgenError(f"{path or '--bands'}: band numbers start at 1, got {text!r}")
    return bands


def pixel_size_m(crs: Any, transform: Any, height: int, width: int) -> float | None:
    """Ground sampling distance in metres per pixel (geometric mean of x and y), None without CRS."""
    if crs is None:
        return None
    dx, dy = math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        from pyproj import Geod

        lon, lat = transform * (width / 2.0, height / 2.0)
        geod = Geod(ellps="WGS84")
        _, _, gx = geod.inv(lon, lat, lon + dx, lat)
        _, _, gy = geod.inv(lon, lat, lon, lat + dy)
        return float(math.sqrt(abs(gx * gy)))
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return float(math.sqrt(dx * dy) * factor)


@dataclass(frozen=True)
class RasterInfo:
    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None
    transform: tuple[float, ...]
    nodata: float | None
    descriptions: tuple[str | None, ...]
    gsd: float | None
    block_shape: tuple[int, int]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def tagged_modality(self) -> str | None:
        return self.tags.get(TAG_PREFIX + "MODALITY")

    @property
    def likely_modality(self) -> str | None:
        return self.tagged_modality or guess_modality(self.count, self.dtype)


def raster_info(src: rasterio.DatasetReader, label: str | None = None) -> RasterInfo:
    return RasterInfo(
        path=label or src.name,
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0],
        crs=src.crs.to_string() if src.crs else None,
        transform=tuple(src.transform)[:6],
        nodata=src.nodata,
        descriptions=tuple(src.descriptions),
        gsd=pixel_size_m(src.crs, src.transform, src.height, src.width),
        block_shape=tuple(src.block_shapes[0]),
        tags=dict(src.tags()),
    )


def resolve_modality(info: RasterInfo, declared: str | None, band_count: int) -> str:
    """The source modality: `--from`, else the file's earthgen tag, else the band count, else an error."""
    if declared:
        name = get_modality(declared).name
    elif info.tagged_modality:
        name = get_modality(info.tagged_modality).name
    else:
        guess = guess_modality(band_count, info.dtype)
        if guess is None:
            raise EarthgenError(
                f"{info.path}: cannot tell the modality of a {band_count}-band raster; pass --from "
                "(rgb, sar, nir, pan, ms or osm)"
            )
        name = guess
    mod = get_modality(name)
    if not mod.accepts_band_count(band_count):
        want = str(mod.min_bands) if mod.min_bands == mod.max_bands else f"{mod.min_bands}-{mod.max_bands}"
        raise EarthgenError(
            f"{info.path}: {band_count} band(s) but modality {name} needs {want}; "
            "select bands with --bands (e.g. --bands 4,3,2)"
        )
    return name


class SourceRaster:
    """One opened input, its selected bands, and (if needed) a warp onto a reference grid."""

    def __init__(self, src: rasterio.DatasetReader, label: str, modality: str,
                 bands: Sequence[int] | None) -> None:
        self.src = src
        self.label = label
        self.modality = modality
        self.bands = tuple(bands) if bands else tuple(range(1, src.count + 1))
        bad = [b for b in self.bands if b > src.count]
        if bad:
            raise EarthgenError(f"{label}: band {bad[0]} requested but the raster has {src.count} band(s)")
        self.dtype = src.dtypes[self.bands[0] - 1]
        if any(np.issubdtype(np.dtype(src.dtypes[b - 1]), np.complexfloating) for b in self.bands):
            raise EarthgenError(f"{label}: complex bands ({self.dtype}) are not supported; write the "
                                "amplitude or intensity as a real band first")
        self.nodata = src.nodata
        # GDAL's mask per band: its nodata value (which may differ per band), or a mask band of the
        # file (per dataset, alpha) that read_masks gives.
        self._band_nodata = [src.nodatavals[b - 1] for b in self.bands]
        self.has_mask_band = any(
            flags & {MaskFlags.per_dataset, MaskFlags.alpha}
            for flags in (set(src.mask_flag_enums[b - 1]) for b in self.bands))
        self.reader: rasterio.DatasetReader | WarpedVRT = src

    @property
    def count(self) -> int:
        return len(self.bands)

    def warp_to(self, ref: rasterio.DatasetReader) -> None:
        """Resample onto the reference grid (a lazy WarpedVRT) only when the grids differ."""
        if (self.src.crs == ref.crs and self.src.transform == ref.transform
                and self.src.width == ref.width and self.src.height == ref.height):
            return
        if self.src.crs is None or ref.crs is None:
            raise EarthgenError(f"{self.label}: not on the grid of {ref.name} and has no CRS to warp with")
        resampling = Resampling[get_modality(self.modality).resampling]
        self.reader = WarpedVRT(self.src, crs=ref.crs, transform=ref.transform, width=ref.width,
                                height=ref.height, resampling=resampling,
                                src_nodata=self.nodata, nodata=self.nodata)

    def set_columns(self, x0: int, x1: int, max_rows: int) -> None:
        """Reads will stay within columns [x0, x1), at most `max_rows` high, moving downwards.

        Source rows are then fetched once, in chunks of whole block rows across the stripe, into
        one preallocated buffer that tiles are cut from: overlapping tiles do not decode the same
        compressed blocks again, and GDAL's block cache can stay small.
        """
        block_h = self.src.block_shapes[self.bands[0] - 1][0]
        self._chunk_rows = block_h if 16 <= block_h <= 1024 else 256
        self._cols = (x0, x1)
        self._buf = np.empty((self.count, max_rows + self._chunk_rows, x1 - x0), dtype=self.dtype)
        self._buf_y0 = 0  # scene row of self._buf[:, 0]
        self._buf_rows = 0  # rows held

    def _rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows [y0, y1) of the current stripe's columns (y0 never decreases)."""
        if y0 < self._buf_y0:
            raise ValueError("stripe reads must move downwards")
        if y0 > self._buf_y0:  # drop rows above y0 (a short overlapping copy)
            drop = min(y0 - self._buf_y0, self._buf_rows)
            self._buf[:, : self._buf_rows - drop] = self._buf[:, drop : self._buf_rows].copy()
            self._buf_rows -= drop
            self._buf_y0 = y0
        x0, x1 = self._cols
        while self._buf_y0 + self._buf_rows < y1:
            start = self._buf_y0 + self._buf_rows
            stop = min(self.src.height, (start // self._chunk_rows + 1) * self._chunk_rows)
            window = Window(x0, start, x1 - x0, stop - start)
            self._read(window, out=self._buf[:, self._buf_rows : self._buf_rows + stop - start])
            self._buf_rows += stop - start
        return self._buf[:, y0 - self._buf_y0 : y1 - self._buf_y0]

    def _read(self, window: Window, out: np.ndarray | None = None, masks: bool = False) -> np.ndarray:
        """GDAL's read (or mask read) of the selected bands; a corrupt or truncated file is a
        one-line error naming it, with GDAL's own reason."""
        try:
            if masks:
                return self.reader.read_masks(self.bands, window=window)
            return self.reader.read(self.bands, window=window, out=out)
        except RasterioError as exc:
            raise EarthgenError(f"{self.label}: cannot read pixels ({gdal_reason(exc)})") from None

    def read_values(self, window: Window) -> np.ndarray:
        """(C, h, w) the selected bands as stored (their own dtype, nodata untouched), through the
        warp when there is one: for outputs that copy input pixels exactly."""
        return self.reader.read(list(self.bands), window=window)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(C, h, w) raw values with invalid pixels set to 0, and the (h, w) mask of pixels valid
        in every band."""
        work, band_valid = self.read_bands(window)
        valid = band_valid.all(axis=0)
        if not valid.all():
            work = np.where(valid, work, 0).astype(work.dtype, copy=False)
        return work, valid

    def read_bands(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(C, h, w) raw values with invalid values set to 0, and the (C, h, w) validity per band.

        Values are float32 where that holds every value of the band's dtype exactly (up to 16-bit
        integers, float16/32), float64 for 32-bit integers and float64, 64-bit integers as read. A value is invalid
        where it equals its band's nodata, is not finite, or the file's mask band says so: a real
        value that equals nodata in one band leaves the other bands of that pixel valid."""
        cols = getattr(self, "_cols", None)
        col0, row0 = int(window.col_off), int(window.row_off)
        if cols is not None and cols[0] <= col0 and col0 + int(window.width) <= cols[1]:
            rows = self._rows(row0, row0 + int(window.height))
            data = rows[:, :, col0 - cols[0] : col0 - cols[0] + int(window.width)]
        else:
            data = self._read(window)
        valid = np.ones(data.shape, dtype=bool)
        for i, nd in enumerate(self._band_nodata):
            if nd is not None and not math.isnan(nd):
                valid[i] &= data[i] != np.asarray(nd).astype(data.dtype)
        if self.has_mask_band:
            valid &= self._read(window, masks=True) > 0
        work = data.astype(work_dtype(data.dtype), copy=False)  # may be a view of the row buffer
        if np.issubdtype(data.dtype, np.floating):
            valid &= np.isfinite(data)
        if not valid.all():
            work = np.where(valid, work, 0).astype(work.dtype, copy=False)
        return work, valid


def gdal_reason(exc: BaseException) -> str:
    """GDAL's own first line for a rasterio error ("Read failed. See previous exception" points to
    the exception it was raised from)."""
    cause = exc.__cause__ or exc.__context__
    if "previous exception" in str(exc) and cause is not None:
        exc = cause
    args = getattr(exc, "args", ())
    text = str(args[2] if type(exc).__name__.startswith("CPLE_") and len(args) == 3 else exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def work_dtype(dtype: np.dtype | str) -> type:
    """The type that holds every value of `dtype` exactly: float32 up to 16-bit integers and
    float32 itself, float64 beyond (2**24 < 2**31: int32 in float32 would lose digits), and 64-bit
    integers as they are (no float holds them above 2**53; the blender splits them exactly)."""
    dt = np.dtype(dtype)
    if dt.kind in "iu" and dt.itemsize == 8:
        return dt.type
    return np.float32 if dt.itemsize <= 2 or dt == np.float32 else np.float64


def mask_reader(mask_path: str, src, stack: contextlib.ExitStack) -> Callable[[int, int, int, int], np.ndarray]:
    """Masked pixels (True = regenerate) of a mask raster on exactly the input's grid."""
    m = stack.enter_context(open_raster(mask_path, allow_no_crs=src.crs is None))
    if (m.crs, m.transform, m.width, m.height) != (src.crs, src.transform, src.width, src.height):
        raise EarthgenError(f"--mask {mask_path}: not on the grid of {src.name} (CRS, transform and size must "
                            f"match; got {m.width}x{m.height} vs {src.width}x{src.height})")
    if m.count != 1:
        raise EarthgenError(f"--mask {mask_path}: expected 1 band, got {m.count}")
    nd = m.nodata

    def read(r: int, c: int, h: int, w: int) -> np.ndarray:
        a = m.read(1, window=Window(c, r, w, h))
        masked = a != 0
        if nd is not None and not (isinstance(nd, float) and math.isnan(nd)):
            masked &= a != nd
        return masked & ~np.isnan(a) if a.dtype.kind == "f" else masked

    return read

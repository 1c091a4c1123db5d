"""Whole-scene translation: read windows, run tiles through a translator, blend, stream to disk.

Memory is bounded by one stripe of tile rows, whatever the scene size: the scene is cut into
vertical stripes (about STRIPE_WIDTH pixels wide, on output block boundaries), each processed from
top to bottom. A float64 accumulator one tile high and one stripe wide collects weighted tile
outputs; after each tile row the rows no later tile can touch are cast, masked and written, and
the rest carries over to the next tile row.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np
from rasterio.windows import Window

from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.tiling import TileGrid
from earthgen_cli.inference.translator import TileBatch, Translator
from earthgen_cli.io.raster import (
    STDIO, GeoTiffWriter, OutputSpec, SourceRaster, check_output, gdal_env, open_raster,
    provenance_tags, raster_info, resolve_modality,
)
from earthgen_cli.modalities import cast_to_dtype, dtype_info, get_modality

STRIPE_WIDTH = 4096  # pixels; the accumulator is tile x STRIPE_WIDTH x bands float64
BLOCKSIZE = 512  # output GeoTIFF block side; stripes are aligned to it


@dataclass(frozen=True)
class SourceSpec:
    path: str
    modality: str | None = None  # None: from the file's tags or band count
    bands: tuple[int, ...] | None = None


@dataclass(frozen=True)
class TileOptions:
    tile: int = 512
    overlap: int = 64
    batch_size: int = 4
    seed: int = 0

    def validate(self, multiple: int) -> None:
        if self.tile < 16:
            raise EarthgenError(f"--tile must be at least 16, got {self.tile}")
        if self.tile % multiple:
            raise EarthgenError(f"--tile {self.tile} must be a multiple of {multiple} for this model")
        if not 0 <= 2 * self.overlap < self.tile:
            raise EarthgenError(f"--overlap must be >= 0 and less than half of --tile ({self.tile}), got {self.overlap}")
        if self.batch_size < 1:
            raise EarthgenError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class OutputOptions:
    path: str
    overwrite: bool = False
    cog: bool = False
    allow_no_crs: bool = False


@dataclass
class TranslateSummary:
    output: str
    source_modalities: list[str]
    target: str
    model: str
    width: int
    height: int
    bands: int
    dtype: str
    crs: str | None
    nodata: float | None
    tiles: int
    seconds: float
    megapixels_per_second: float
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        if d["nodata"] is not None and isinstance(d["nodata"], float) and math.isnan(d["nodata"]):
            d["nodata"] = "nan"
        return json.dumps(d, sort_keys=True)


def output_nodata(primary: SourceRaster, out_dtype: str, any_float_source: bool) -> float | None:
    """Keep the source nodata where the output dtype can hold it; else NaN (float) or the dtype's
    lowest value (integers). None when no source can have invalid pixels."""
    src_nd = primary.nodata
    info = dtype_info(out_dtype)
    if src_nd is None and not any_float_source:
        return None
    if src_nd is not None:
        if not info.is_integer:
            return float(src_nd)
        if not math.isnan(src_nd) and float(src_nd).is_integer() and info.lo <= src_nd <= info.hi:
            return float(src_nd)
    return math.nan if not info.is_integer else info.lo


def _padded(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Reflect-pad (..., h0, w0) up to (..., h, w) for scenes smaller than a model tile."""
    ph, pw = h - arr.shape[-2], w - arr.shape[-1]
    if ph == 0 and pw == 0:
        return arr
    pad = [(0, 0)] * (arr.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if arr.shape[-2] > ph and arr.shape[-1] > pw else "edge"
    return np.pad(arr, pad, mode=mode)


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="tile", disable=quiet, leave=False, dynamic_ncols=True)


@dataclass
class _Band:
    """Accumulator for one stripe of rows [y0, y0 + h) and owned columns [x0, x1)."""

    y0: int
    acc: np.ndarray  # (C, h, w) float64 weighted sum
    valid: np.ndarray  # (h, w) bool


def _run_stripes(sources: Sequence[SourceRaster], target: str, translator: Translator,
                 grid: TileGrid, opts: TileOptions, writer: GeoTiffWriter, out_bands: int,
                 out_dtype: str, nodata: float | None, gsd: float | None, bar,
                 pad_to: tuple[int, int]) -> int:
    row_w, col_w = grid.row_weights(), grid.col_weights()
    rows, cols = grid.row_starts, grid.col_starts
    th, tw = grid.tile_h, grid.tile_w
    tiles_done = 0
    for x0, x1, need in grid.stripes(STRIPE_WIDTH, BLOCKSIZE):
        sw = x1 - x0
        order = [(r, c) for r in range(len(rows)) for c in need]
        band = _Band(rows[0], np.zeros((out_bands, th, sw)), np.zeros((th, sw), dtype=bool))
        cur_row = 0

        def flush(upto_row: int) -> None:
            nonlocal band
            y_end = rows[upto_row + 1] if upto_row + 1 < len(rows) else grid.height
            n = y_end - band.y0
            out = cast_to_dtype(band.acc[:, :n], out_dtype, nodata)
            if nodata is not None:
                out[:, ~band.valid[:n]] = nodata
            writer.write(out, Window(x0, band.y0, sw, n))
            nxt = _Band(y_end, np.zeros_like(band.acc), np.zeros_like(band.valid))
            nxt.acc[:, : th - n] = band.acc[:, n:]
            nxt.valid[: th - n] = band.valid[n:]
            band = nxt

        for b0 in range(0, len(order), opts.batch_size):
            chunk = order[b0 : b0 + opts.batch_size]
            reads = {s.modality: [] for s in sources}
            valids = []
            for r, c in chunk:
                win = Window(cols[c], rows[r], tw, th)
                valid = np.ones((th, tw), dtype=bool)
                for s in sources:
                    data, v = s.read(win)
                    reads[s.modality].append(_padded(data, *pad_to))
                    valid &= v
                valids.append(valid)
            batch = TileBatch(
                sources={m: np.stack(v) for m, v in reads.items()},
                valid=np.stack([_padded(v, *pad_to) for v in valids]),
                origins=tuple((rows[r], cols[c]) for r, c in chunk),
                gsd=gsd,
                seed=opts.seed,
            )
            result = np.asarray(translator.translate(batch, target))
            expected = (len(chunk), out_bands, pad_to[0], pad_to[1])
            if result.shape != expected:
                raise RuntimeError(f"translator {translator.name} returned {result.shape}, expected {expected}")
            for k, (r, c) in enumerate(chunk):
                while r > cur_row:  # rows above this tile row are final
                    flush(cur_row)
                    cur_row += 1
                # The tile's part inside this stripe's owned columns.
                tx0, tx1 = max(cols[c], x0), min(cols[c] + tw, x1)
                wy = row_w[r][:, None]
                wx = col_w[c][tx0 - cols[c] : tx1 - cols[c]][None, :]
                ys = slice(rows[r] - band.y0, rows[r] - band.y0 + th)
                xs = slice(tx0 - x0, tx1 - x0)
                tile_out = result[k, :, :th, tx0 - cols[c] : tx1 - cols[c]].astype(np.float64)
                band.acc[:, ys, xs] += tile_out * (wy * wx)
                band.valid[ys, xs] = valids[k][:, tx0 - cols[c] : tx1 - cols[c]]
            tiles_done += len(chunk)
            bar.update(len(chunk))
        while cur_row < len(rows):
            flush(cur_row)
            cur_row += 1
    return tiles_done


@contextlib.contextmanager
def _open_sources(specs: Sequence[SourceSpec], allow_no_crs: bool) -> Iterator[list[SourceRaster]]:
    with contextlib.ExitStack() as stack:
        opened = []
        for spec in specs:
            src = stack.enter_context(open_raster(spec.path, allow_no_crs=allow_no_crs))
            label = "<stdin>" if spec.path == STDIO else spec.path
            info = raster_info(src, label)
            count = len(spec.bands) if spec.bands else src.count
            modality = resolve_modality(info, spec.modality, count)
            opened.append(SourceRaster(src, label, modality, spec.bands))
        names = [s.modality for s in opened]
        if len(set(names)) != len(names):
            raise EarthgenError(f"two inputs hold the same modality ({', '.join(names)}); give each once")
        ref = opened[0].src
        for s in opened[1:]:
            s.warp_to(ref)
            if s.reader is not s.src:
                stack.callback(s.reader.close)
        yield opened


def _output_spec(primary: SourceRaster, target: str, translator: Translator,
                 sources: Sequence[SourceRaster], out: OutputOptions, nodata: float | None,
                 out_bands: int, out_dtype: str, provenance: dict) -> OutputSpec:
    src = primary.src
    same_layout = primary.modality == target and out_bands == primary.count
    if same_layout:
        descriptions = tuple(src.descriptions[b - 1] for b in primary.bands)
        band_tags = tuple(src.tags(b) for b in primary.bands)
    else:
        descriptions = tuple(get_modality(target).bands[:out_bands])
        band_tags = ()
    tags = {k: v for k, v in src.tags().items() if not k.startswith("EARTHGEN_")}
    tags.update(provenance_tags(
        modality=target,
        source_modality="+".join(s.modality for s in sources),
        direction=f"{'+'.join(s.modality for s in sources)}:{target}",
        **{k.lower().removeprefix("earthgen_"): v for k, v in translator.describe().items()},
        **provenance,
    ))
    return OutputSpec(path=out.path, count=out_bands, dtype=out_dtype, nodata=nodata,
                      descriptions=descriptions, tags=tags, band_tags=band_tags, cog=out.cog,
                      blocksize=BLOCKSIZE)


def translate_scene(sources: Sequence[SourceSpec], target: str, translator: Translator,
                    tiles: TileOptions, out: OutputOptions, *, quiet: bool = True,
                    provenance: dict | None = None) -> TranslateSummary:
    """Translate the scene of `sources[0]` (others are warped onto its grid) to `target`."""
    target = get_modality(target).name
    tiles.validate(translator.tile_multiple)
    check_output(out.path, out.overwrite)
    t0 = time.perf_counter()
    with gdal_env(), _open_sources(sources, out.allow_no_crs) as opened:
        primary = opened[0]
        translator.check([s.modality for s in opened], target)
        out_bands = translator.output_bands(target, {s.modality: s.count for s in opened})
        out_dtype = translator.output_dtype(target, {s.modality: s.dtype for s in opened})
        any_float = any(np.issubdtype(np.dtype(s.dtype), np.floating) for s in opened)
        nodata = output_nodata(primary, out_dtype, any_float)
        src = primary.src
        grid = TileGrid(src.height, src.width, tiles.tile, tiles.overlap)
        mult = translator.tile_multiple
        pad_to = (-(-grid.tile_h // mult) * mult, -(-grid.tile_w // mult) * mult)
        gsd = raster_info(src, primary.label).gsd
        crs = src.crs.to_string() if src.crs else None
        spec = _output_spec(primary, target, translator, opened, out, nodata, out_bands, out_dtype,
                            {"seed": tiles.seed, **(provenance or {})})
        total = sum(len(grid.row_starts) * len(need) for _, _, need in grid.stripes(STRIPE_WIDTH, BLOCKSIZE))
        with GeoTiffWriter(src, spec) as writer, _progress(total, quiet) as bar:
            done = _run_stripes(opened, target, translator, grid, tiles, writer, out_bands, out_dtype,
                                nodata, gsd, bar, pad_to)
    seconds = time.perf_counter() - t0
    return TranslateSummary(
        output=out.path, source_modalities=[s.modality for s in opened], target=target,
        model=translator.name, width=grid.width, height=grid.height, bands=out_bands,
        dtype=out_dtype, crs=crs, nodata=nodata,
        tiles=done, seconds=round(seconds, 3),
        megapixels_per_second=round(grid.width * grid.height / 1e6 / max(seconds, 1e-9), 3),
    )

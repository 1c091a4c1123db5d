"""Whole-scene translation: read windows, run tiles through a translator, blend, stream to disk.

Tiles sit on the model's grid (origins and sides multiples of its tile multiple, see `tiling`):
at the right and bottom edges of a scene whose size is not such a multiple, and for a scene smaller
than one tile, the last tile reaches past the scene; the source is reflect-padded there and that
part of the output is cropped away before blending, so every scene size works.

Memory is bounded by one stripe of tile rows, whatever the scene size: the scene is cut into
vertical stripes (about STRIPE_WIDTH pixels wide, on output block boundaries), each processed from
top to bottom. An accumulator one tile high and one stripe wide collects weighted tile
outputs; after each tile row the rows no later tile can touch are cast, masked and written, and
the rest carries over to the next tile row (`stripe_blend.StripeBand`). Partial sums shared with
the next stripe pass through a scratch file beside the output (`io.scratch.run_folder`), so each
tile is computed exactly once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.stripe_blend import Carry, StripeBand
from earthgen_cli.inference.tiling import TileGrid, check_tiling
from earthgen_cli.inference.translator import TileBatch, Translator
from earthgen_cli.io.geotiff_writer import GeoTiffWriter, OutputSpec, inherited_tags, provenance_tags
from earthgen_cli.io.publish import SCENE_MAX_PIXELS, STDIO, check_output, check_output_room, same_path
from earthgen_cli.io.scratch import run_folder
from earthgen_cli.io.raster import SourceRaster, Window, gdal_env, open_raster, raster_info, resolve_modality
from earthgen_cli.modalities import dtype_info, get_modality

STRIPE_WIDTH = 1024  # pixels; the accumulator is about tile x (STRIPE_WIDTH + tile) x bands float64
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
    batch_size: int | None = None  # tiles read per translator call; None: the translator's own batch, else 4
    seed: int = 0

    def validate(self, multiple: int) -> None:
        check_tiling(self.tile, self.overlap, multiple, minimum=16)
        if self.batch_size is not None and self.batch_size < 1:
            raise EarthgenError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class OutputOptions:
    path: str
    overwrite: bool = False
    cog: bool = False
    allow_no_crs: bool = False
    max_pixels: int = SCENE_MAX_PIXELS


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


def output_nodata(sources: Sequence[SourceRaster], out_dtype: str) -> tuple[float | None, float | None]:
    """(declared nodata of the output, value written at invalid pixels).

    The primary source's nodata is kept where the output dtype can hold it. A float output of a
    source without nodata declares none either (invalid pixels become NaN, as they were). An
    integer output whose sources can hold invalid pixels (a nodata value, or NaN in a float band)
    declares the dtype's lowest value. None, None when no source can be invalid.
    """
    src_nd = sources[0].nodata
    info = dtype_info(out_dtype)
    can_be_invalid = any(s.nodata is not None or s.has_mask_band or np.issubdtype(np.dtype(s.dtype), np.floating)
                         for s in sources)
    if not info.is_integer:
        declared = float(src_nd) if src_nd is not None else None
        return declared, (declared if declared is not None else math.nan) if can_be_invalid else None
    if src_nd is not None and not math.isnan(src_nd) and float(src_nd).is_integer() and info.lo <= src_nd <= info.hi:
        return float(src_nd), float(src_nd)
    return (info.lo, info.lo) if can_be_invalid else (None, None)


def _padded(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Reflect-pad (..., h0, w0) up to (..., h, w): the part of an edge tile past the scene (edge-pad
    where the scene is too thin to reflect)."""
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
class _Output:
    """One raster the stripes write: the translation, or its confidence."""

    writer: GeoTiffWriter
    bands: int
    dtype: str
    nodata: tuple[float | None, float | None]  # declared nodata, value written at invalid pixels
    band_masks: bool = False  # band b is invalid where the primary source's band b is (identity)


def _run_stripes(sources: Sequence[SourceRaster], target: str, translator: Translator,
                 grid: TileGrid, opts: TileOptions, outputs: Sequence[_Output], gsd: float | None,
                 bar, pad_to: tuple[int, int], scratch_dir: str) -> int:
    row_w, col_w = grid.row_weights(), grid.col_weights()
    rows, cols = grid.row_starts, grid.col_starts
    th, tw = grid.tile_h, grid.tile_w
    tiles_done = 0
    carry_in: list = [None] * len(outputs)
    stripes = grid.stripes(STRIPE_WIDTH, BLOCKSIZE)
    for k, stripe in enumerate(stripes):
        carry_out: list = [None] * len(outputs)
        if stripe.carry_width > 0 and k < len(stripes) - 1:
            carry_out = [Carry(open(os.path.join(scratch_dir, f"carry{k}_{i}.bin"), "w+b"), stripe.carry_width)
                         for i in range(len(outputs))]
        bands = [StripeBand(o.bands, th, stripe, rows[0], carry_in[i], carry_out[i], o.writer, o.dtype,
                             o.nodata, grid.height, BLOCKSIZE, o.bands if o.band_masks else 1)
                 for i, o in enumerate(outputs)]
        for s in sources:
            s.set_columns(cols[stripe.tile_cols[0]], min(grid.width, cols[stripe.tile_cols[-1]] + tw), th)
        order = [(r, c) for r in range(len(rows)) for c in stripe.tile_cols]
        cur_row = 0
        # a model translator's forward batch (--batch-size), so each call is one forward pass
        group = opts.batch_size or translator.batch_size or 4
        for b0 in range(0, len(order), group):
            chunk = order[b0 : b0 + group]
            arrays = {s.modality: None for s in sources}
            valids, band_valids = [], []
            for j, (r, c) in enumerate(chunk):
                # the part inside the scene; an edge tile is padded past it to the model's grid
                win = Window(cols[c], rows[r], min(tw, grid.width - cols[c]), min(th, grid.height - rows[r]))
                others = np.ones((int(win.height), int(win.width)), dtype=bool)
                for k, s in enumerate(sources):
                    data, bv = s.read_bands(win)
                    if arrays[s.modality] is None:  # filled in place: no list + stack copy
                        arrays[s.modality] = np.empty((len(chunk), data.shape[0], *pad_to), data.dtype)
                    arrays[s.modality][j] = _padded(data, *pad_to)
                    if k == 0:
                        primary = bv
                    else:
                        others &= bv.all(axis=0)
                band_valids.append(primary & others[None])
                valids.append(primary.all(axis=0) & others)  # a model needs every band of every source
            batch = TileBatch(
                sources=arrays,
                valid=np.stack([_padded(v, *pad_to) for v in valids]),
                origins=tuple((rows[r], cols[c]) for r, c in chunk),
                gsd=gsd,
                seed=opts.seed,
            )
            if len(outputs) > 1:
                results = translator.translate_with_confidence(batch, target)
            else:
                results = (translator.translate(batch, target),)
            results = [np.asarray(x) for x in results]
            for o, res in zip(outputs, results):
                expected = (len(chunk), o.bands, pad_to[0], pad_to[1])
                if res.shape != expected:
                    raise RuntimeError(f"translator {translator.name} returned {res.shape}, expected {expected}")
            for j, (r, c) in enumerate(chunk):
                while r > cur_row:  # every tile of row cur_row is in: its upper rows are final
                    for band in bands:
                        band.flush(rows[cur_row + 1])
                    cur_row += 1
                h, w = valids[j].shape  # the padding past the scene edge is cropped away
                weight = row_w[r][:h, None] * col_w[c][None, :w]
                for band, res, o in zip(bands, results, outputs):
                    mask = band_valids[j] if o.band_masks else valids[j][None]
                    band.add(res[j, :, :h, :w], weight, mask, rows[r], cols[c])
            tiles_done += len(chunk)
            bar.update(len(chunk))
        while cur_row < len(rows):
            for band in bands:
                band.flush(rows[cur_row + 1] if cur_row + 1 < len(rows) else grid.height)
            cur_row += 1
        for c_in, c_out in zip(carry_in, carry_out):
            if c_in is not None:
                c_in.fh.close()
            if c_out is not None:
                c_out.fh.seek(0)
        carry_in = carry_out
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
    tags = inherited_tags(src.tags())
    tags.update(provenance_tags(
        modality=target,
        source_modality="+".join(s.modality for s in sources),
        direction=f"{'+'.join(s.modality for s in sources)}:{target}",
        **{k.lower().removeprefix("earthgen_"): v for k, v in translator.describe().items()},
        **provenance,
    ))
    return OutputSpec(path=out.path, count=out_bands, dtype=out_dtype, nodata=nodata,
                      descriptions=descriptions, tags=tags, band_tags=band_tags, cog=out.cog,
                      blocksize=BLOCKSIZE, overwrite=out.overwrite)


def _confidence_spec(primary: SourceRaster, out: OutputOptions, translator: Translator,
                     target: str, seed: int) -> OutputSpec:
    tags = provenance_tags(
        modality="confidence", confidence_of=target,
        **{k.lower().removeprefix("earthgen_"): v for k, v in translator.describe().items()}, seed=seed)
    return OutputSpec(path=out.path, count=1, dtype="float32", nodata=math.nan,
                      descriptions=("confidence",), tags=tags, cog=out.cog, blocksize=BLOCKSIZE,
                      overwrite=out.overwrite)


def translate_scene(sources: Sequence[SourceSpec], target: str, translator: Translator,
                    tiles: TileOptions, out: OutputOptions, *, quiet: bool = True,
                    provenance: dict | None = None,
                    confidence: OutputOptions | None = None) -> TranslateSummary:
    """Translate the scene of `sources[0]` (others are warped onto its grid) to `target`.

    `confidence`: also write the model's per-pixel confidence (0..1, float32) on the same grid."""
    target = get_modality(target).name
    tiles.validate(translator.tile_multiple)
    inputs = [s.path for s in sources]
    check_output(out.path, out.overwrite, inputs)
    if confidence is not None:
        if not translator.has_confidence:
            raise EarthgenError(f"--confidence needs a model with a confidence head, not {translator.name}")
        if confidence.path in (out.path, STDIO) or same_path(confidence.path, out.path):
            raise EarthgenError(f"{confidence.path}: --confidence needs its own file, not the output or stdout")
        check_output(confidence.path, confidence.overwrite, inputs)
    t0 = time.perf_counter()
    with gdal_env(), _open_sources(sources, out.allow_no_crs) as opened:
        primary = opened[0]
        translator.check([s.modality for s in opened], target)
        out_bands = translator.output_bands(target, {s.modality: s.count for s in opened})
        out_dtype = translator.output_dtype(target, {s.modality: s.dtype for s in opened})
        nodata, fill = output_nodata(opened, out_dtype)
        src = primary.src
        check_output_room(out.path, src.width, src.height, out_bands, out_dtype, out.max_pixels)
        if confidence is not None:
            check_output_room(confidence.path, src.width, src.height, 1, "float32", out.max_pixels)
        grid = TileGrid(src.height, src.width, tiles.tile, tiles.overlap, align=translator.tile_multiple)
        pad_to = (grid.tile_h, grid.tile_w)  # multiples of the tile multiple
        gsd = raster_info(src, primary.label).gsd
        crs = src.crs.to_string() if src.crs else None
        spec = _output_spec(primary, target, translator, opened, out, nodata, out_bands, out_dtype,
                            {"seed": tiles.seed, **(provenance or {})})
        total = len(grid.row_starts) * len(grid.col_starts)
        with contextlib.ExitStack() as stack:
            band_masks = (translator.bandwise and primary.modality == target
                          and out_bands == primary.count)
            outputs = [_Output(stack.enter_context(GeoTiffWriter(src, spec)), out_bands, out_dtype, (nodata, fill),
                               band_masks)]
            if confidence is not None:
                cspec = _confidence_spec(primary, confidence, translator, target, tiles.seed)
                outputs.append(_Output(stack.enter_context(GeoTiffWriter(src, cspec)), 1, "float32",
                                       (math.nan, math.nan)))
            bar = stack.enter_context(_progress(total, quiet))
            scratch = stack.enter_context(run_folder(out.path, "carry"))
            done = _run_stripes(opened, target, translator, grid, tiles, outputs, gsd, bar, pad_to, scratch)
    seconds = time.perf_counter() - t0
    return TranslateSummary(
        output=out.path, source_modalities=[s.modality for s in opened], target=target,
        model=translator.name, width=grid.width, height=grid.height, bands=out_bands,
        dtype=out_dtype, crs=crs, nodata=nodata,
        tiles=done, seconds=round(seconds, 3),
        megapixels_per_second=round(grid.width * grid.height / 1e6 / max(seconds, 1e-9), 3),
        extra={"confidence": confidence.path} if confidence is not None else {},
    )

"""Scene plumbing that joint, inpaint and extend share: the scene options and the model they run
(`load_scene_model`), condition rasters parsed, opened, warped onto the output grid and encoded,
and the one row-band GeoTIFF writer their outputs go through."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError, EarthgenWarning
from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout, WindowReader
from earthgen_cli.inference.multidiffusion import encode_canvas
from earthgen_cli.inference.runtime import ModelRuntime
from earthgen_cli.inference.scene_translate import TileOptions
from earthgen_cli.inference.tiling import GENERATE_TILE, resolve_tiling
from earthgen_cli.io.geotiff_writer import GeoTiffWriter, OutputSpec
from earthgen_cli.io.grid import OutputGrid, footprint
from earthgen_cli.io.publish import SCENE_MAX_PIXELS, check_output, check_output_room
from earthgen_cli.io.raster import SourceRaster, Window, open_raster
from earthgen_cli.modalities import cast_to_dtype, get_modality

WRITE_ROWS = 256


@dataclass(frozen=True)
class SceneOptions(TileOptions):
    """The translate engine's tiling options, with generation's smaller default tile and a prompt."""

    tile: int = GENERATE_TILE
    prompt: str | None = None  # text condition (checkpoints trained with text only)
    max_pixels: int = SCENE_MAX_PIXELS  # --max-pixels of inpaint and extend


# Generation keeps about six float32 canvases per band of the scene in its scratch folder (noise,
# two latent states, known latents, pixels): what check_output_room adds to the output's own size.
CANVAS_BYTES_PER_BAND_PIXEL = 24


def check_generation_room(output: str, width: int, height: int, bands: int, dtype: str,
                          max_pixels: int | None) -> None:
    """check_output_room for joint, inpaint and extend: the output plus their scratch canvases."""
    check_output_room(output, width, height, bands, dtype, max_pixels,
                      CANVAS_BYTES_PER_BAND_PIXEL * bands * width * height)


def load_scene_model(model: str | None, device: str, tile: int | None, overlap: int | None,
                     batch_size: int | None, seed: int, prompt: str | None = None,
                     max_pixels: int = SCENE_MAX_PIXELS):
    """The checkpoint (None: the default model) and the scene options, with --tile/--overlap
    defaulting to the crop size it was trained on (else 256) and --batch-size to the device's
    default: what joint, inpaint and extend share."""
    from earthgen_cli.inference.runtime import load_runtime

    sm = load_runtime(model, device)
    return sm, scene_options(sm, tile, overlap, batch_size, seed, prompt, max_pixels)


def scene_options(sm, tile: int | None, overlap: int | None, batch_size: int | None, seed: int,
                  prompt: str | None = None, max_pixels: int = SCENE_MAX_PIXELS) -> SceneOptions:
    """The scene options of a loaded scene model (the CLI's and the Python API's)."""
    from earthgen_cli.inference.runtime import resolve_batch_size

    if tile is not None and sm.native_tile and tile > sm.native_tile:
        # its positions and token counts were learnt at that size: larger tiles drift and show seams
        warnings.warn(f"--tile {tile} is larger than the {sm.native_tile} px crops the checkpoint was trained "
                      f"on; expect drift and seams (leave --tile out to use {sm.native_tile})", EarthgenWarning,
                      stacklevel=2)
    tile, overlap = resolve_tiling(tile, overlap, sm.native_tile, GENERATE_TILE)
    return SceneOptions(tile, overlap, resolve_batch_size(batch_size, sm.device), seed, prompt, max_pixels)


def parse_conditions(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """['osm=map.tif'] -> (('osm', 'map.tif'),)."""
    out = []
    for item in items:
        mod, sep, path = item.partition("=")
        if not sep or not path:
            raise EarthgenError(f"--cond {item!r}: expected MODALITY=PATH, e.g. osm=map.tif")
        out.append((get_modality(mod.strip()).name, path))
    names = [m for m, _ in out]
    if len(set(names)) != len(names):
        raise EarthgenError(f"--cond names a modality twice ({', '.join(names)})")
    return tuple(out)


@dataclass
class ConditionSource:
    """One condition on the output grid: a window reader in raw units, and how to write it out."""

    modality: str
    read: WindowReader
    write_rows: object  # (row, rows) -> (C, rows, width) array in `dtype`
    dtype: str
    nodata: float | None
    label: str


@contextlib.contextmanager
def open_conditions(sm: ModelRuntime, grid: OutputGrid, conditions: Sequence[tuple[str, str]],
                    osm_pbf: str | None) -> Iterator[list[ConditionSource]]:
    """Rasters warped onto `grid` (lazily, window by window) and OSM rendered onto it."""
    with contextlib.ExitStack() as stack:
        out = []
        for mod, path in conditions:
            src = stack.enter_context(open_raster(path))
            want = sm.cfg.bands.get(mod)
            if want is not None and src.count != want:
                raise EarthgenError(f"--cond {mod}={path}: {src.count} band(s), the checkpoint's {mod} has {want}")
            sr = SourceRaster(src, path, mod, None)
            sr.warp_to(grid)
            if sr.reader is not sr.src:
                stack.callback(sr.reader.close)
            inside = footprint(src, grid, f"--cond {mod}={path}")

            def read(r, c, h, w, sr=sr, inside=inside):
                data, valid = sr.read(Window(c, r, w, h))
                return data, valid & inside(r, c, h, w)

            out.append(ConditionSource(
                mod, read,
                lambda r, n, sr=sr: sr.read_values(Window(0, r, grid.width, n)),
                sr.dtype, sr.nodata, path))
        if osm_pbf is not None:
            from earthgen_cli.io.osm_render import OsmLayer

            if any(m == "osm" for m, _ in conditions):
                raise EarthgenError("--osm-pbf and --cond osm=... both give the osm condition; pass one")
            layer = OsmLayer.load(osm_pbf, None, grid.as_grid())
            out.append(ConditionSource(
                "osm", lambda r, c, h, w: (layer.render(r, c, h, w).astype(np.float32), np.ones((h, w), bool)),
                lambda r, n: layer.render(r, 0, n, grid.width), "uint8", None, osm_pbf))
        yield out


def encode_conditions(sm: ModelRuntime, layout: SceneLayout, conds: Sequence[ConditionSource],
                      canvas: MemmapCanvas) -> dict[str, np.memmap]:
    """Clean latent canvases of the conditions; one that misses the grid entirely is an error."""
    out = {}
    for c in conds:
        lat, keep = encode_canvas(sm, layout, c.modality, c.read, canvas, f"cond_{c.modality}")
        if not np.asarray(keep).any():
            raise EarthgenError(f"condition {c.label}: no valid pixels over the output grid")
        out[c.modality] = lat
    return out


def write_row_bands(like, grid: OutputGrid, spec: OutputSpec, rows: Callable[[int, int], np.ndarray]) -> None:
    """The one row-band writer of joint, inpaint and extend: `rows(row, n)` gives rows
    [row, row + n) as (C, n, grid.width) in the output dtype, WRITE_ROWS at a time; the file is
    staged and published atomically by GeoTiffWriter (on `like`'s grid)."""
    with GeoTiffWriter(like, spec) as dst:
        for r in range(0, grid.height, WRITE_ROWS):
            n = min(WRITE_ROWS, grid.height - r)
            dst.write(rows(r, n), Window(0, r, grid.width, n))


def cast_rows(pixels: np.ndarray, grid: OutputGrid, dtype: str, nodata: float | None) -> Callable[[int, int], np.ndarray]:
    """Rows of a (C, >=H, >=W) raw canvas cropped to the grid and cast to `dtype`."""
    return lambda r, n: cast_to_dtype(np.array(pixels[:, r : r + n, : grid.width], dtype=np.float64), dtype, nodata,
                                      overwrite_input=True)


def write_pixels(grid: OutputGrid, path: str, modality: str, pixels: np.ndarray, tags: Mapping[str, str],
                 overwrite: bool, dtype: str | None = None, nodata: float | None = None) -> None:
    """The (C, >=H, >=W) raw canvas cropped to the grid, cast to the modality's dtype, written atomically."""
    dtype = dtype or get_modality(modality).dtype
    check_output(path, overwrite)
    bands = pixels.shape[0]
    spec = OutputSpec(path, bands, dtype, nodata, tuple(get_modality(modality).bands[:bands]), dict(tags),
                      overwrite=overwrite)
    write_row_bands(grid, grid, spec, cast_rows(pixels, grid, dtype, nodata))


def write_condition(grid: OutputGrid, path: str, cond: ConditionSource, tags: Mapping[str, str],
                    overwrite: bool) -> None:
    check_output(path, overwrite)
    first = np.asarray(cond.write_rows(0, min(WRITE_ROWS, grid.height)))
    spec = OutputSpec(path, first.shape[0], cond.dtype, cond.nodata,
                      tuple(get_modality(cond.modality).bands[: first.shape[0]]), dict(tags), overwrite=overwrite)
    write_row_bands(grid, grid, spec, lambda r, n: first if r == 0 else np.asarray(cond.write_rows(r, n)))

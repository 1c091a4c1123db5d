"""`earthgen joint`: several modalities generated together from noise over a bounding box
(MetaEarth-MM paired generation), optionally conditioned on rasters warped to the grid or on OSM
vectors rendered onto it; N samples make a folder that `build-dataset` reads (the generative data
engine).

A modality named in --pair that is also a condition is written as that condition on the output
grid (e.g. `--pair osm,rgb --osm-pbf city.pbf` writes the rendered map and the RGB generated from
it), so every sample folder holds complete pairs.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from rasterio.windows import Window

from earthgen_cli.errors import EarthgenError, EarthgenWarning
from earthgen_cli.inference.scene_translate import TileOptions
from earthgen_cli.inference.tiling import GENERATE_TILE, resolve_tiling
from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout, WindowReader
from earthgen_cli.flow.generate import SamplingOptions
from earthgen_cli.inference.runtime import ModelRuntime
from earthgen_cli.inference.multidiffusion import (decode_canvas, encode_canvas, modality_salt,
                                                   noise_canvas, sample_scene)
from earthgen_cli.io.geotiff_writer import GeoTiffWriter, OutputSpec, provenance_tags
from earthgen_cli.io.grid import OutputGrid
from earthgen_cli.io.publish import SCENE_MAX_PIXELS, check_not_input, check_output, check_output_room, staged_file
from earthgen_cli.io.scratch import run_folder
from earthgen_cli.io.raster import SourceRaster, gdal_env, open_raster
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


@dataclass(frozen=True)
class JointRequest:
    pair: tuple[str, ...]  # modalities written, in order
    grid: OutputGrid
    out_dir: str
    conditions: tuple[tuple[str, str], ...] = ()  # (modality, raster path) warped onto the grid
    osm_pbf: str | None = None  # OSM vectors rendered as the osm condition
    count: int = 1
    overwrite: bool = False


@dataclass
class JointSummary:
    out_dir: str
    files: list[str]
    generated: list[str]
    conditions: list[str]
    width: int
    height: int
    crs: str
    gsd: float
    bounds: list[float]
    count: int
    seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


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


def footprint(src, grid: OutputGrid, label: str):
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
                lambda r, n, sr=sr: sr.reader.read(sr.bands, window=Window(0, r, grid.width, n)),
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


def write_pixels(grid: OutputGrid, path: str, modality: str, pixels: np.ndarray, tags: Mapping[str, str],
                 overwrite: bool, dtype: str | None = None, nodata: float | None = None) -> None:
    """The (C, >=H, >=W) raw canvas cropped to the grid, cast to the modality's dtype, written atomically."""
    dtype = dtype or get_modality(modality).dtype
    check_output(path, overwrite)
    bands = pixels.shape[0]
    spec = OutputSpec(path, bands, dtype, nodata, tuple(get_modality(modality).bands[:bands]), dict(tags),
                      overwrite=overwrite)
    with GeoTiffWriter(grid, spec) as dst:
        for r in range(0, grid.height, WRITE_ROWS):
            n = min(WRITE_ROWS, grid.height - r)
            rows = np.array(pixels[:, r : r + n, : grid.width], dtype=np.float64)
            dst.write(cast_to_dtype(rows, dtype, nodata, overwrite_input=True), Window(0, r, grid.width, n))


def write_condition(grid: OutputGrid, path: str, cond: ConditionSource, tags: Mapping[str, str],
                    overwrite: bool) -> None:
    check_output(path, overwrite)
    first = np.asarray(cond.write_rows(0, min(WRITE_ROWS, grid.height)))
    spec = OutputSpec(path, first.shape[0], cond.dtype, cond.nodata,
                      tuple(get_modality(cond.modality).bands[: first.shape[0]]), dict(tags), overwrite=overwrite)
    with GeoTiffWriter(grid, spec) as dst:
        for r in range(0, grid.height, WRITE_ROWS):
            n = min(WRITE_ROWS, grid.height - r)
            dst.write(first if r == 0 else np.asarray(cond.write_rows(r, n)), Window(0, r, grid.width, n))


def dataset_config(out_dir: Path, pair: Sequence[str]) -> str:
    """A build-dataset config over the sample folders (paths relative to the config's folder)."""
    lines = ["# written by earthgen joint: generated paired samples", "root: .", "sources:",
             f"  - name: {out_dir.name or 'joint'}", "    scenes: samples/*", "    modalities:"]
    for m in pair:
        units = ", units: db" if m == "sar" else ""
        lines.append(f"      {m}: {{file: {m}.tif{units}}}")
    return "\n".join(lines) + "\n"


def _prepare_dir(req: JointRequest) -> tuple[Path, list[Path]]:
    out = Path(req.out_dir)
    if out.exists() and not out.is_dir():
        raise EarthgenError(f"-o {req.out_dir}: exists and is not a folder")
    if not out.parent.is_dir():
        raise EarthgenError(f"-o {req.out_dir}: folder {out.parent} does not exist")
    writable = out if out.is_dir() else out.parent  # checked before hours of sampling, not after
    if not os.access(writable, os.W_OK | os.X_OK):
        raise EarthgenError(f"-o {req.out_dir}: folder {writable} is not writable")
    samples = [out] if req.count == 1 else [out / "samples" / f"{k:03d}" for k in range(req.count)]
    files = [s / f"{m}.tif" for s in samples for m in req.pair]
    if req.count > 1:
        files.append(out / "dataset.yaml")
    for f in files:
        check_not_input(f, [*(p for _, p in req.conditions), req.osm_pbf])
        if f.exists() and not req.overwrite:
            raise EarthgenError(f"{f}: exists; pass --overwrite to replace it")
    return out, samples


def generate_joint(sm: ModelRuntime, req: JointRequest, scene: SceneOptions, opts: SamplingOptions,
                   quiet: bool = True) -> JointSummary:
    t0 = time.perf_counter()
    if req.count < 1:
        raise EarthgenError(f"--count must be at least 1, got {req.count}")
    if scene.batch_size < 1:
        raise EarthgenError(f"--batch-size must be at least 1, got {scene.batch_size}")
    cond_mods = [m for m, _ in req.conditions] + (["osm"] if req.osm_pbf else [])
    generate = [m for m in req.pair if m not in cond_mods]
    if not generate:
        raise EarthgenError("--pair: every modality is given as a condition; nothing to generate")
    out, samples = _prepare_dir(req)  # before the model's warnings: a refused output is one line
    sm.check(generate, cond_mods)
    text = sm.text_vector(scene.prompt)
    grid = req.grid
    cfg = sm.cfg
    layout = SceneLayout(grid.height, grid.width, cfg.codec.factor, cfg.tile_multiple, scene.tile, scene.overlap)
    bands = sum(cfg.bands[m] for m in req.pair)
    check_generation_room(req.out_dir, grid.width, grid.height, bands * req.count, "float32", None)
    files: list[str] = []
    from tqdm import tqdm

    total = req.count * opts.steps * len(layout.tiles())
    with gdal_env(), open_conditions(sm, grid, req.conditions, req.osm_pbf) as conds, \
            run_folder(out, "canvas") as scratch, \
            tqdm(total=total, unit="tile", disable=quiet, leave=False) as bar:
        canvas = MemmapCanvas(scratch)
        cond_lat = encode_conditions(sm, layout, conds, canvas)
        direction = f"{'+'.join(cond_mods)}:{'+'.join(generate)}" if cond_mods else f"joint:{'+'.join(generate)}"
        base_tags = dict(model=sm.label, direction=direction, steps=opts.steps, sampler=opts.sampler.value,
                         guidance=opts.guidance, tile=scene.tile, overlap=scene.overlap, prompt=scene.prompt)
        for k, folder in enumerate(samples):
            seed = scene.seed + k
            init = {m: noise_canvas(canvas, f"{m}_eps", seed, modality_salt(m), cfg.latent_channels(m),
                                    layout.latent_shape) for m in generate}
            gsd = grid.gsd * (grid.crs.linear_units_factor[1] if grid.crs.linear_units_factor else 1.0)
            latents = sample_scene(sm, layout, init, cond_lat, opts, seed, gsd, scene.batch_size, canvas,
                                   progress=bar, text=text)
            folder.mkdir(parents=True, exist_ok=True)
            for m in req.pair:
                path = str(folder / f"{m}.tif")
                tags = provenance_tags(modality=m, seed=seed, **base_tags)
                cond = next((c for c in conds if c.modality == m), None)
                if cond is not None:
                    write_condition(grid, path, cond, tags, req.overwrite)
                else:
                    pixels = decode_canvas(sm, layout, m, latents[m], canvas, scene.batch_size)
                    write_pixels(grid, path, m, pixels, tags, req.overwrite)
                files.append(path)
        if req.count > 1:
            with staged_file(out / "dataset.yaml", req.overwrite) as tmp:
                tmp.write_text(dataset_config(out, req.pair))
            files.append(str(out / "dataset.yaml"))
    return JointSummary(str(out), files, generate, cond_mods, grid.width, grid.height, grid.crs.to_string(),
                        grid.gsd, list(grid.bounds), req.count, round(time.perf_counter() - t0, 3))

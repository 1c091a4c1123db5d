"""`earthgen inpaint`: regenerate the masked pixels of a scene consistently with the rest
(Text2Earth editing; SAR-guided cloud removal with `--cond sar=...`), without retraining.

Flow-based inpainting: a checkpoint trained with masked-slot batches (model.token_times) gets the
known tokens clean at t=0 beside the noisy ones at every step, so the fill is predicted from what
surrounds it (`--steps 1`: the posterior mean of the hole in one call); for other checkpoints the
known latent cells are put back on their own noise path after every step (see `multidiffusion`). The
final raster is a composite: every unmasked pixel is the input's value read and written unchanged
(same dtype, bit for bit), only masked pixels come from the model.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout, WindowReader
from earthgen_cli.flow.generate import SamplingOptions
from earthgen_cli.inference.scene_setup import (WRITE_ROWS, SceneOptions, cast_rows, check_generation_room,
                                                encode_conditions, open_conditions, write_row_bands)
from earthgen_cli.inference.runtime import ModelRuntime
from earthgen_cli.inference.multidiffusion import (Known, current_fill, decode_canvas, encode_canvas,
                                                   modality_salt, noise_canvas, repaint_passes, sample_scene)
from earthgen_cli.io.geotiff_writer import OutputSpec, inherited_tags, provenance_tags
from earthgen_cli.io.grid import OutputGrid
from earthgen_cli.io.publish import check_output
from earthgen_cli.io.scratch import run_folder
from earthgen_cli.io.raster import (SourceRaster, Window, gdal_env, mask_reader, open_raster, raster_info,
                                    resolve_modality)


@dataclass
class FillSummary:
    output: str
    modality: str
    width: int
    height: int
    generated_pixels: int
    seconds: float

    def to_json(self) -> str:
        import json

        return json.dumps(asdict(self), sort_keys=True)


def open_input(src, path: str, declared: str | None, sm: ModelRuntime) -> SourceRaster:
    info = raster_info(src, path)
    modality = resolve_modality(info, declared, src.count)
    want = sm.cfg.bands.get(modality)
    if want is not None and src.count != want:
        raise EarthgenError(f"{path}: {src.count} band(s), the checkpoint's {modality} has {want}")
    return SourceRaster(src, path, modality, None)


def fill_scene(sm: ModelRuntime, grid: OutputGrid, modality: str, read_known: WindowReader,
               conditions: Sequence[tuple[str, str]], scene: SceneOptions, opts: SamplingOptions,
               canvas: MemmapCanvas, quiet: bool) -> np.ndarray:
    """Generate `modality` over `grid` where `read_known` says a pixel is not known; (C, >=H, >=W)
    raw values of the whole padded scene (the caller composites the known pixels back)."""
    from tqdm import tqdm

    cfg = sm.cfg
    text = sm.text_vector(scene.prompt)
    layout = SceneLayout(grid.height, grid.width, cfg.codec.factor, cfg.tile_multiple, scene.tile, scene.overlap)
    calls = len(repaint_passes(opts.steps, opts.resample)) * len(layout.tiles())
    with open_conditions(sm, grid, conditions, None) as conds, \
            tqdm(total=calls, unit="tile", disable=quiet, leave=False) as bar:
        cond_lat = encode_conditions(sm, layout, conds, canvas)
        known_lat, keep = encode_canvas(sm, layout, modality, read_known, canvas, "known")
        init = {modality: noise_canvas(canvas, "eps", scene.seed, modality_salt(modality),
                                       cfg.latent_channels(modality), layout.latent_shape)}
        latents = sample_scene(sm, layout, init, cond_lat, opts, scene.seed, grid.gsd_m, scene.batch_size, canvas,
                               known=Known({modality: known_lat}, keep), progress=bar, text=text)
        return decode_canvas(sm, layout, modality, latents[modality], canvas, scene.batch_size, fill=True)


def write_composite(like, grid: OutputGrid, spec: OutputSpec, pixels: np.ndarray,
                    place: Callable[[int, int, np.ndarray], None]) -> None:
    """Write generated rows cast to the output dtype; `place(row, rows, block)` then puts the
    known input values into the block in place, unchanged."""
    generated = cast_rows(pixels, grid, spec.dtype, spec.nodata)

    def rows(r: int, n: int) -> np.ndarray:
        block = generated(r, n)
        place(r, n, block)
        return block

    write_row_bands(like, grid, spec, rows)


def output_spec(src, sr: SourceRaster, path: str, sm: ModelRuntime, scene: SceneOptions, opts: SamplingOptions,
                conditions: Sequence[tuple[str, str]], command: str, overwrite: bool = False) -> OutputSpec:
    tags = inherited_tags(src.tags())
    tags.update(provenance_tags(modality=sr.modality, model=sm.label, steps=opts.steps, seed=scene.seed,
                                sampler=opts.sampler.value, guidance=opts.guidance, operation=command,
                                prompt=scene.prompt, resample=opts.resample if opts.resample > 1 else None,
                                fill=current_fill(sm.model),
                                direction="+".join([sr.modality, *(m for m, _ in conditions)]) + f":{sr.modality}"))
    return OutputSpec(path, sr.count, sr.dtype, src.nodata, tuple(src.descriptions), tags, overwrite=overwrite)


def inpaint_scene(sm: ModelRuntime, source: str, mask: str, output: str, conditions: Sequence[tuple[str, str]],
                  scene: SceneOptions, opts: SamplingOptions, declared: str | None = None,
                  overwrite: bool = False, quiet: bool = True) -> FillSummary:
    t0 = time.perf_counter()
    check_output(output, overwrite, [source, None if mask == "nodata" else mask, *(p for _, p in conditions)])
    with gdal_env(), contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(source))
        grid = OutputGrid.of(src)
        check_generation_room(output, grid.width, grid.height, src.count, src.dtypes[0], scene.max_pixels)
        sr = open_input(src, source, declared, sm)
        sm.check([sr.modality], [m for m, _ in conditions])
        if mask == "nodata":
            def masked_at(r, c, h, w):
                return ~sr.read(Window(c, r, w, h))[1]
        else:
            masked_at = mask_reader(mask, src, stack)
        count = sum(int(masked_at(r, 0, min(WRITE_ROWS, src.height - r), src.width).sum())
                    for r in range(0, src.height, WRITE_ROWS))
        if count == 0:
            what = "has no nodata pixels" if mask == "nodata" else "masks no pixels"
            raise EarthgenError(f"--mask {mask}: {what} in {source}; nothing to inpaint")

        def read_known(r, c, h, w):
            data, valid = sr.read(Window(c, r, w, h))
            return data, valid & ~masked_at(r, c, h, w)

        spec = output_spec(src, sr, output, sm, scene, opts, conditions, "inpaint", overwrite)
        with run_folder(output, "canvas") as scratch:
            pixels = fill_scene(sm, grid, sr.modality, read_known, conditions, scene, opts, MemmapCanvas(scratch), quiet)

            def place(r, n, block):
                orig = sr.read_values(Window(0, r, src.width, n))
                keep = ~masked_at(r, 0, n, src.width)
                block[:, keep] = orig[:, keep]

            write_composite(src, grid, spec, pixels, place)
    return FillSummary(output, sr.modality, grid.width, grid.height, count, round(time.perf_counter() - t0, 3))

"""`earthgen extend`: outpainting past a scene's edges (Text2Earth unbounded scenes).

The output grid is the input's grid grown by whole pixels (`OutputGrid.extended`), so every input
pixel keeps its exact ground position and is copied through unchanged; the new margin is
inpainted with the whole input as the known region.
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.canvas import MemmapCanvas
from earthgen_cli.flow.generate import SamplingOptions
from earthgen_cli.inference.inpaint import FillSummary, fill_scene, open_input, output_spec, write_composite
from earthgen_cli.inference.scene_setup import SceneOptions, check_generation_room
from earthgen_cli.inference.runtime import ModelRuntime
from earthgen_cli.io.grid import OutputGrid
from earthgen_cli.io.publish import check_output
from earthgen_cli.io.scratch import run_folder
from earthgen_cli.io.raster import Window, gdal_env, open_raster

SIDES = ("north", "south", "east", "west")
MAX_EXTEND_FACTOR = 16  # --by larger than this many times the scene is almost surely a typo


def parse_sides(text: str) -> tuple[str, ...]:
    """'all' or a comma list of north/south/east/west."""
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if parts == ["all"]:
        return SIDES
    bad = [p for p in parts if p not in SIDES]
    if bad or not parts:
        raise EarthgenError(f"--side {text!r}: expected all or a comma list of north, south, east, west")
    return tuple(dict.fromkeys(parts))


def _intersect(row: int, col: int, h: int, w: int, top: int, left: int, height: int, width: int):
    """The part of window (row, col, h, w) of the new grid inside the old scene placed at (top, left):
    (old row, old col, rows, cols, offset row, offset col) or None."""
    r0, c0 = max(row, top), max(col, left)
    r1, c1 = min(row + h, top + height), min(col + w, left + width)
    if r1 <= r0 or c1 <= c0:
        return None
    return r0 - top, c0 - left, r1 - r0, c1 - c0, r0 - row, c0 - col


def extend_scene(sm: ModelRuntime, source: str, by: int, sides: Sequence[str], output: str,
                 conditions: Sequence[tuple[str, str]], scene: SceneOptions, opts: SamplingOptions,
                 declared: str | None = None, overwrite: bool = False, quiet: bool = True) -> FillSummary:
    t0 = time.perf_counter()
    if by < 1:
        raise EarthgenError(f"--by must be a positive number of pixels, got {by}")
    check_output(output, overwrite, [source, *(p for _, p in conditions)])
    with gdal_env(), contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(source))
        if by > MAX_EXTEND_FACTOR * max(src.width, src.height):
            raise EarthgenError(f"--by {by}: more than {MAX_EXTEND_FACTOR}x the scene size; extend in steps")
        n, s, e, w = (by if side in sides else 0 for side in SIDES)
        grid = OutputGrid.of(src).extended(n, s, e, w)
        check_generation_room(output, grid.width, grid.height, src.count, src.dtypes[0], scene.max_pixels)
        sr = open_input(src, source, declared, sm)
        sm.check([sr.modality], [m for m, _ in conditions])
        sm.text_vector(scene.prompt)  # refuse a prompt the checkpoint cannot follow before any work
        bands = sr.count

        def read_known(r, c, h, ww):
            data = np.zeros((bands, h, ww), dtype=np.float32)
            valid = np.zeros((h, ww), dtype=bool)
            part = _intersect(r, c, h, ww, n, w, src.height, src.width)
            if part is not None:
                orow, ocol, ph, pw, dr, dc = part
                d, v = sr.read(Window(ocol, orow, pw, ph))
                data[:, dr : dr + ph, dc : dc + pw] = d
                valid[dr : dr + ph, dc : dc + pw] = v
            return data, valid

        spec = output_spec(src, sr, output, sm, scene, opts, conditions, f"extend {by} px {'+'.join(sides)}",
                           overwrite)
        with run_folder(output, "canvas") as scratch:
            pixels = fill_scene(sm, grid, sr.modality, read_known, conditions, scene, opts, MemmapCanvas(scratch), quiet)

            def place(r, rows, block):
                part = _intersect(r, 0, rows, grid.width, n, w, src.height, src.width)
                if part is not None:
                    orow, ocol, ph, pw, dr, dc = part
                    block[:, dr : dr + ph, dc : dc + pw] = sr.read_values(Window(ocol, orow, pw, ph))

            write_composite(grid, grid, spec, pixels, place)
    new = grid.width * grid.height - src.width * src.height
    return FillSummary(output, sr.modality, grid.width, grid.height, new, round(time.perf_counter() - t0, 3))

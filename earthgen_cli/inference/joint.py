"""`earthgen joint`: several modalities generated together from noise over a bounding box
(MetaEarth-MM paired generation), optionally conditioned on rasters warped to the grid or on OSM
vectors rendered onto it; N samples make a folder that `build-dataset` reads (the generative data
engine).

A modality named in --pair that is also a condition is written as that condition on the output
grid (e.g. `--pair osm,rgb --osm-pbf city.pbf` writes the rendered map and the RGB generated from
it), so every sample folder holds complete pairs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from earthgen_cli.errors import EarthgenError
from earthgen_cli.flow.generate import SamplingOptions
from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout
from earthgen_cli.inference.multidiffusion import decode_canvas, modality_salt, noise_canvas, sample_scene
from earthgen_cli.inference.runtime import ModelRuntime
from earthgen_cli.inference.scene_setup import (SceneOptions, check_generation_room, encode_conditions,
                                                open_conditions, write_condition, write_pixels)
from earthgen_cli.io.geotiff_writer import provenance_tags
from earthgen_cli.io.grid import OutputGrid
from earthgen_cli.io.publish import check_not_input, staged_file
from earthgen_cli.io.raster import gdal_env
from earthgen_cli.io.scratch import run_folder


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
            latents = sample_scene(sm, layout, init, cond_lat, opts, seed, grid.gsd_m, scene.batch_size, canvas,
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

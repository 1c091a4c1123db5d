from __future__ import annotations

from typing import List, Optional

import typer

from earthgen_cli.cli import options as opt
from earthgen_cli.flow.choices import Sampler

NAME = "inpaint"


def command(
    source: str = typer.Argument(..., metavar="IN", help="Input raster."),
    mask: str = typer.Option(..., "--mask", help="Mask raster on IN's grid (non-zero = regenerate), or nodata."),
    output: str = typer.Option(..., "--output", "-o", help="Output GeoTIFF."),
    from_: Optional[str] = typer.Option(None, "--from", help="Modality of IN (default: file tags, else band count)."),
    model: Optional[str] = opt.Checkpoint,
    cond: List[str] = opt.Cond,
    steps: Optional[int] = opt.FillSteps,
    fill: Optional[str] = opt.Fill,
    sampler: Sampler = opt.SamplerName,
    guidance: float = opt.Guidance,
    resample: int = opt.Resample,
    seed: int = opt.Seed,
    prompt: Optional[str] = opt.Prompt,
    tile: Optional[int] = opt.GenTile,
    overlap: Optional[int] = opt.Overlap,
    batch_size: Optional[int] = opt.BatchSize,
    device: str = opt.Device,
    max_pixels: int = opt.MaxPixels,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
    json_out: bool = opt.JsonOut,
) -> None:
    """Regenerate masked pixels consistently with the rest of the scene; others are copied unchanged.

    Example (SAR-guided cloud removal): earthgen inpaint s2.tif --mask clouds.tif --cond sar=s1.tif -m ckpt -o out.tif
    """
    from earthgen_cli.inference.inpaint import inpaint_scene
    from earthgen_cli.inference.scene_setup import load_scene_model, parse_conditions
    from earthgen_cli.inference.multidiffusion import fill_method, fill_steps, sampling_options

    conditions = parse_conditions(cond)
    sm, scene = load_scene_model(model, device, tile, overlap, batch_size, seed, prompt, max_pixels)
    opts = sampling_options(fill_steps(steps, sm.cfg), sampler, guidance, resample)
    with fill_method(sm.model, fill, sm.path):
        summary = inpaint_scene(sm, source, mask, output, conditions, scene, opts, from_, overwrite, quiet)
    if json_out:
        typer.echo(summary.to_json())

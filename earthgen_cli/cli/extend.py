from __future__ import annotations

from typing import List, Optional

import typer

from earthgen_cli.cli import options as opt
from earthgen_cli.flow.choices import Sampler

NAME = "extend"


def command(
    source: str = typer.Argument(..., metavar="IN", help="Input raster."),
    by: int = typer.Option(..., "--by", help="Pixels to add on each chosen side."),
    output: str = typer.Option(..., "--output", "-o", help="Output GeoTIFF."),
    side: str = typer.Option("all", "--side", help="all, or a comma list of north, south, east, west."),
    from_: Optional[str] = typer.Option(None, "--from", help="Modality of IN (default: file tags, else band count)."),
    model: Optional[str] = opt.Checkpoint,
    cond: List[str] = opt.Cond,
    steps: Optional[int] = opt.FillSteps,
    fill: Optional[str] = opt.Fill,
    sampler: Sampler = opt.SamplerName,
    guidance: float = opt.Guidance,
    resample: int = opt.Resample,
    prompt: Optional[str] = opt.Prompt,
    seed: int = opt.Seed,
    tile: Optional[int] = opt.GenTile,
    overlap: Optional[int] = opt.Overlap,
    batch_size: Optional[int] = opt.BatchSize,
    device: str = opt.Device,
    max_pixels: int = opt.MaxPixels,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
    json_out: bool = opt.JsonOut,
) -> None:
    """Outpaint a scene past its edges; the new grid extends the old one exactly, old pixels unchanged.

    Example: earthgen extend s2_rgb.tif --by 128 --side east,south -m ckpt -o wider.tif
    """
    from earthgen_cli.inference.extend import extend_scene, parse_sides
    from earthgen_cli.inference.scene_setup import load_scene_model, parse_conditions
    from earthgen_cli.inference.multidiffusion import fill_method, fill_steps, sampling_options

    sides = parse_sides(side)
    conditions = parse_conditions(cond)
    sm, scene = load_scene_model(model, device, tile, overlap, batch_size, seed, prompt, max_pixels)
    opts = sampling_options(fill_steps(steps, sm.cfg), sampler, guidance, resample)
    with fill_method(sm.model, fill, sm.path):
        summary = extend_scene(sm, source, by, sides, output, conditions, scene, opts, from_, overwrite, quiet)
    if json_out:
        typer.echo(summary.to_json())

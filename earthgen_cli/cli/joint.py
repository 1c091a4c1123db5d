from __future__ import annotations

from typing import List, Optional

import typer

from earthgen_cli.cli import options as opt
from earthgen_cli.flow.choices import Sampler

NAME = "joint"


def command(
    pair: str = typer.Option(..., "--pair", help="Modalities to write, e.g. osm,rgb."),
    bbox: str = typer.Option(..., "--bbox", help="W,S,E,N in --bbox-crs units."),
    gsd: float = typer.Option(..., "--gsd", help="Metres per pixel of the output grid."),
    output: str = typer.Option(..., "--output", "-o", help="Output folder (one GeoTIFF per modality)."),
    bbox_crs: str = typer.Option("EPSG:4326", "--bbox-crs", help="CRS of --bbox."),
    crs: str = typer.Option("utm", "--crs", help="Output CRS (EPSG:N), or utm: the UTM zone of the bbox centre."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", help="Refuse grids larger than this (per modality)."),
    model: Optional[str] = opt.Checkpoint,
    cond: List[str] = opt.Cond,
    osm_pbf: Optional[str] = typer.Option(None, "--osm-pbf", help="OSM .pbf/.geojson rendered onto the grid as the osm condition."),
    count: int = typer.Option(1, "--count", help="N > 1: N paired samples (seeds seed..seed+N-1) + dataset.yaml for build-dataset."),
    steps: int = opt.Steps,
    sampler: Sampler = opt.SamplerName,
    guidance: float = opt.Guidance,
    prompt: Optional[str] = opt.Prompt,
    seed: int = opt.Seed,
    tile: Optional[int] = opt.GenTile,
    overlap: Optional[int] = opt.Overlap,
    batch_size: Optional[int] = opt.BatchSize,
    device: str = opt.Device,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
    json_out: bool = opt.JsonOut,
) -> None:
    """Generate several modalities together over a bounding box, georeferenced and seamless.

    The grid is derived from --bbox in --crs at --gsd m/px; areas larger than a tile are sampled as
    one scene (tiles averaged in latent space at every step). Example:
    earthgen joint --pair osm,rgb --bbox 24.93,60.16,24.95,60.17 --gsd 2 -m ckpt -o out/
    """
    from earthgen_cli.inference.joint import JointRequest, generate_joint
    from earthgen_cli.inference.scene_setup import load_scene_model, parse_conditions
    from earthgen_cli.inference.multidiffusion import sampling_options
    from earthgen_cli.io.grid import bbox_grid
    from earthgen_cli.modalities import parse_modality_list

    mods = parse_modality_list(pair)
    conditions = parse_conditions(cond)
    grid = bbox_grid(bbox, gsd, bbox_crs, crs, max_pixels)
    opts = sampling_options(steps, sampler, guidance)
    sm, scene = load_scene_model(model, device, tile, overlap, batch_size, seed, prompt)
    summary = generate_joint(
        sm, JointRequest(tuple(mods), grid, output, conditions, osm_pbf, count, overwrite), scene, opts, quiet=quiet)
    if json_out:
        typer.echo(summary.to_json())

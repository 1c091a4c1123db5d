from __future__ import annotations

from typing import Optional

import typer

from earthgen_cli.cli import options as opt

NAME = "translate"


def command(
    source: str = typer.Argument(..., metavar="IN", help="Input raster (any path rasterio opens; - for stdin)."),
    to: str = typer.Option(..., "--to", help="Target modality: rgb, sar, nir, pan, ms, osm."),
    output: str = typer.Option(..., "--output", "-o", help="Output GeoTIFF (- for stdout)."),
    from_: Optional[str] = typer.Option(None, "--from", help="Source modality (default: file tags, else band count)."),
    model: str = typer.Option("identity", "--model", "-m", help="identity, luminance, or a checkpoint directory."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Bands of IN to use, 1-based, e.g. 4,3,2."),
    tile: int = opt.Tile,
    overlap: int = opt.Overlap,
    batch_size: int = opt.BatchSize,
    seed: int = opt.Seed,
    device: str = opt.Device,
    overwrite: bool = opt.Overwrite,
    cog: bool = opt.Cog,
    allow_no_crs: bool = opt.AllowNoCrs,
    quiet: bool = opt.Quiet,
    json_out: bool = opt.JsonOut,
) -> None:
    """Translate a whole georeferenced scene to another modality, tile by tile.

    The output keeps the input's CRS, transform, nodata, band descriptions and tags, and adds
    EARTHGEN_* provenance tags. Example: earthgen translate s2_rgb.tif --to pan --model luminance -o pan.tif
    """
    from earthgen_cli.inference.engine import OutputOptions, SourceSpec, TileOptions, translate_scene
    from earthgen_cli.inference.translator import load_translator
    from earthgen_cli.io.raster import parse_bands

    translator = load_translator(model, device=device)
    summary = translate_scene(
        [SourceSpec(source, from_, parse_bands(bands, source))],
        to,
        translator,
        TileOptions(tile=tile, overlap=overlap, batch_size=batch_size, seed=seed),
        OutputOptions(output, overwrite=overwrite, cog=cog, allow_no_crs=allow_no_crs),
        quiet=quiet,
    )
    if json_out:
        if output == "-":
            typer.echo(summary.to_json(), err=True)
        else:
            typer.echo(summary.to_json())

"""`earthgen render-osm`: OpenStreetMap vectors rendered as an RGB map on a reference grid."""

from __future__ import annotations

from pathlib import Path

import typer

from earthgen_cli.cli import options as opt

NAME = "render-osm"


def command(
    source: Path = typer.Argument(..., help="OSM data: .osm.pbf or .geojson."),
    like: Path = typer.Option(..., "--like", help="Reference raster whose CRS, transform and size are used."),
    output: Path = typer.Option(..., "--output", "-o", help="GeoTIFF to write (3-band uint8)."),
    overwrite: bool = opt.Overwrite,
    max_pixels: int = opt.MaxPixels,
) -> None:
    """Render roads, buildings, water, green and land use in earthgen's fixed OSM style onto a raster's grid."""
    from earthgen_cli.io.osm_render import STYLE_VERSION, render_osm_file

    n = render_osm_file(str(source), str(like), str(output), overwrite=overwrite, max_pixels=max_pixels)
    typer.echo(f"{output}: {n} OSM feature(s) rendered ({STYLE_VERSION})")
    if n == 0:  # written all the same (a real empty place renders blank), but rarely what was meant
        typer.echo(f"warning: no feature of {source} falls on the grid of {like}: {output} is a blank map "
                   f"(does the data cover that area?)", err=True)

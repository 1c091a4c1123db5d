from __future__ import annotations

import typer

from earthgen_cli.cli import options as opt

NAME = "info"


def command(
    path: str = typer.Argument(..., metavar="PATH", help="A raster (or - for stdin)."),
    json_out: bool = opt.JsonOut,
) -> None:
    """Describe a raster: size, CRS, GSD in m/px, bands, likely modality, earthgen tags."""
    from earthgen_cli.io.describe import describe_raster

    typer.echo(describe_raster(path, as_json=json_out))

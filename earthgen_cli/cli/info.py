from __future__ import annotations

import typer

from earthgen_cli.cli import options as opt

NAME = "info"


def command(
    path: str = typer.Argument(..., metavar="PATH",
                                help="A raster (or - for stdin), or a dataset folder from build-dataset."),
    json_out: bool = opt.JsonOut,
) -> None:
    """Describe a raster (size, CRS, GSD in m/px, bands, likely modality, earthgen tags) or a
    built dataset (chips per split, modalities, GSD range, pair matrix)."""
    from pathlib import Path

    if path != "-" and Path(path).is_dir():
        from earthgen_cli.io.dataset_store import describe_dataset

        typer.echo(describe_dataset(path, as_json=json_out))
        return
    from earthgen_cli.io.describe import describe_raster

    typer.echo(describe_raster(path, as_json=json_out))

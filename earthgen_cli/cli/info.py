from __future__ import annotations

import typer

from earthgen_cli.cli import options as opt

NAME = "info"


def command(
    path: str = typer.Argument(..., metavar="PATH",
                                help="A raster (or - for stdin), a dataset folder from build-dataset, a checkpoint, "
                                     "or default (the model shipped with earthgen)."),
    json_out: bool = opt.JsonOut,
) -> None:
    """Describe a raster (size, CRS, GSD in m/px, bands, likely modality, earthgen tags), a
    built dataset (chips per split, modalities, GSD range, pair matrix) or a checkpoint
    (modalities, pairs seen in training, preset, parameters, steps)."""
    from pathlib import Path

    from earthgen_cli.inference.default_model import DEFAULT

    if path == DEFAULT and not Path(path).exists():
        from earthgen_cli.inference.default_model import describe_default_model

        typer.echo(describe_default_model(as_json=json_out))
        return
    if path != "-" and Path(path).is_dir() and (Path(path) / "config.json").is_file():
        if json_out:
            import json

            from earthgen_cli.inference.describe_model import checkpoint_summary

            typer.echo(json.dumps(checkpoint_summary(path), indent=2))
            return
        from earthgen_cli.checkpoint import describe_checkpoint

        typer.echo(describe_checkpoint(path))
        return
    if path != "-" and Path(path).is_dir():
        from earthgen_cli.io.dataset_store import describe_dataset

        typer.echo(describe_dataset(path, as_json=json_out))
        return
    from earthgen_cli.io.describe import describe_raster

    typer.echo(describe_raster(path, as_json=json_out))

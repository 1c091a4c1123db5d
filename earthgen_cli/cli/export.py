"""`earthgen export`: an inference-only (optionally float16) copy of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earthgen_cli.cli import options as opt

NAME = "export"


def command(
    checkpoint: Path = typer.Argument(..., metavar="CKPT", help="Checkpoint directory (step_N from earthgen train)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write (config.json + ema.safetensors)."),
    half: bool = typer.Option(False, "--half", help="Store parameters as float16 (half the size)."),
    report: Optional[Path] = typer.Option(None, "--report", help="report.json from earthgen evaluate: writes card.json "
                                          "(per direction the claim rule's numbers and verdict, judged again "
                                          "from the report's numbers; see docs/evaluation.md)."),
    overwrite: bool = opt.Overwrite,
) -> None:
    """Copy a checkpoint for inference only: EMA weights and config, no optimizer state.

    Example: earthgen export runs/x/checkpoints/step_002500 --half --report eval/report.json -o my-model/
    """
    from earthgen_cli.train.export import export_model

    path = export_model(checkpoint, output, half=half, report=report, overwrite=overwrite)
    typer.echo(str(path))

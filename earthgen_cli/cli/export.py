"""`earthgen export`: an inference-only (optionally float16) copy of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from earthgen_cli.cli import options as opt

NAME = "export"


def command(
    checkpoint: Path = typer.Argument(..., metavar="CKPT", help="Checkpoint directory (step_N from earthgen train)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write (config.json + ema.safetensors)."),
    half: bool = typer.Option(False, "--half", help="Store parameters as float16 (half the size)."),
    report: List[Path] = typer.Option([], "--report", metavar="REPORT.json", help="report.json from earthgen evaluate "
                                      "of this CKPT (its recorded sha256 must match): writes card.json "
                                      "(per direction the claim rule's numbers and verdict, judged again from the "
                                      "report's numbers; see docs/evaluation.md). Repeatable (e.g. the test split, "
                                      "then the out-of-region holdout): a direction is validated only when it "
                                      "passes in every report that scored it."),
    overwrite: bool = opt.Overwrite,
) -> None:
    """Copy a checkpoint for inference only: EMA weights and config, no optimizer state.

    Example: earthgen export runs/x/checkpoints/step_002500 --half --report eval/report.json -o my-model/
    """
    from earthgen_cli.checkpoint import export_model
    from earthgen_cli.evaluate.card import card_from_report
    from earthgen_cli.evaluate.report import check_report_checkpoint
    from earthgen_cli.io.publish import CHECKPOINT, check_output_dir, staged_dir

    for path in report:  # a card states what evaluation measured for exactly these weights
        check_report_checkpoint(path, checkpoint)
    # io.publish's rule, before loading anything: -o never holds CKPT or a report, --overwrite
    # replaces only a model folder, and one that appears meanwhile is never replaced without it
    check_output_dir(output, overwrite, CHECKPOINT, [checkpoint, *report])
    with staged_dir(output, overwrite, CHECKPOINT) as staging:
        card = (lambda: card_from_report(report)) if report else None
        export_model(checkpoint, staging, half=half, card=card, overwrite=True)
    typer.echo(str(output))

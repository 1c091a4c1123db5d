"""`earthgen train`: the codec or flow stage from a YAML config, alone or under torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

NAME = "train"


def command(
    config: Path = typer.Option(..., "--config", "-c", help="Training config YAML (see configs/)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                             help="Override a config key, e.g. optim.steps=500 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint in run.out_dir."),
) -> None:
    """Train the unified model (stage flow), its per-modality codecs (stage codec), or the
    evaluation's pairwise U-Net baselines (stage unet) and CAS encoders (stage cas).

    Runs alone or under `torchrun --nproc_per_node N` (DDP; stages unet/cas share their models out
    between the processes). Writes run.out_dir/checkpoints/step_N/, log.jsonl and sample grids;
    --resume continues with the same step, optimizer and data position.
    Example: earthgen train --config configs/cpu-small.yaml --set data.root=data/sample64
    """
    from earthgen_cli.train.config import load_train_config
    from earthgen_cli.train.loop import train

    cfg = load_train_config(config, set_ or [])
    last = train(cfg, str(config), resume=resume)
    typer.echo(f"{'models' if cfg.stage.value in ('unet', 'cas') else 'checkpoint'}: {last}", err=True)

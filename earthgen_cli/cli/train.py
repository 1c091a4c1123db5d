"""`earthgen train`: the codec or flow stage from a YAML config, alone or under torchrun (train/loop.py);
the evaluation's stages unet and cas go to evaluate/fit.py."""

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
    from earthgen_cli.train.config import Stage, load_train_config

    cfg = load_train_config(config, set_ or [])
    if cfg.stage in (Stage.unet, Stage.cas):  # the evaluation's models: fitted by evaluate, not the loop
        from earthgen_cli.evaluate.fit import fit_stage

        fit_stage(cfg, str(config), resume=resume, echo=typer.echo)
        typer.echo(f"models: {Path(cfg.run.out_dir)}", err=True)
        return
    from earthgen_cli.train.loop import train

    last = train(cfg, str(config), resume=resume, echo=typer.echo,
                 notify=lambda line: typer.echo(line, err=True))
    typer.echo(f"checkpoint: {last}", err=True)

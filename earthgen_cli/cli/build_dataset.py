"""`earthgen build-dataset`: paired rasters in, aligned training chips out."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Optional

import typer

from earthgen_cli.cli import options as opt

NAME = "build-dataset"


class SplitByOption(str, enum.Enum):  # mirrors io.splits.SplitBy (module-level imports stay light)
    scene = "scene"
    block = "block"


def command(
    output: Path = typer.Argument(..., help="Dataset folder to create."),
    config: Path = typer.Option(..., "--config", "-c", help="YAML file describing the sources."),
    data_root: Optional[Path] = typer.Option(None, "--data-root",
                                             help="Override the config's `root` folder."),
    chip: int = typer.Option(256, "--chip", help="Chip size in pixels of the reference grid."),
    stride: Optional[int] = typer.Option(None, "--stride", help="Chip step in pixels [default: --chip]."),
    max_nodata: float = typer.Option(0.05, "--max-nodata",
                                     help="Drop a chip when any modality misses more than this fraction."),
    min_std: float = typer.Option(0.01, "--min-std",
                                  help="Drop a chip when an image modality's std (model space) is below this."),
    split_by: SplitByOption = typer.Option(SplitByOption.block, "--split-by",
                                           help="Spatially disjoint splits by scene or by ground block."),
    block_size: Optional[float] = typer.Option(None, "--block-size",
                                               help="Block edge in map units [default: 4 chips]."),
    val_frac: float = typer.Option(0.1, "--val-frac", help="Fraction of blocks/scenes for validation."),
    test_frac: float = typer.Option(0.1, "--test-frac", help="Fraction of blocks/scenes for test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split assignment and statistics sampling."),
    gsd: Optional[float] = typer.Option(None, "--gsd", help="Reference GSD in CRS units [default: finest input]."),
    crs: Optional[str] = typer.Option(None, "--crs", help="Reference CRS [default: the finest input's]."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (local dask) [default: CPU count]; 1 runs in this process."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="dask.distributed scheduler address (tcp://host:8786)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip bad scenes and list them instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset folder."),
    quiet: bool = opt.Quiet,
) -> None:
    """Build aligned, spatially split training chips (zarr + chips table + dataset.json) from a YAML config."""
    from earthgen_cli.io.dataset_build import BuildOptions, build_dataset
    from earthgen_cli.io.dataset_config import load_dataset_config
    from earthgen_cli.io.dataset_store import format_summary, open_dataset
    from earthgen_cli.io.splits import SplitBy, SplitPlan

    cfg = load_dataset_config(config, data_root)
    opts = BuildOptions(chip=chip, stride=stride, max_nodata=max_nodata, min_std=min_std,
                        split=SplitPlan(SplitBy(split_by.value), seed, val_frac, test_frac),
                        block_size=block_size, crs=crs, gsd=gsd, skip_bad=skip_bad,
                        workers=workers, scheduler=scheduler, overwrite=overwrite, progress=not quiet)
    report = build_dataset(cfg, output, opts, log=(lambda s: None) if quiet else (lambda s: typer.echo(s, err=True)))
    typer.echo(format_summary(open_dataset(report.path)))

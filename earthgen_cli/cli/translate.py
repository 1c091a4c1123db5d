from __future__ import annotations

from typing import List, Optional

import typer

from earthgen_cli.cli import options as opt
from earthgen_cli.flow.choices import Estimate, Sampler

NAME = "translate"


def command(
    sources: List[str] = typer.Argument(None, metavar="IN", help="Input raster(s) (any path rasterio opens; - for "
                                        "stdin). Several inputs (or --from-list): -o is a folder, one output each."),
    to: str = typer.Option(..., "--to", help="Target modality: rgb, sar, nir, pan, ms, osm."),
    output: str = typer.Option(..., "--output", "-o", help="Output GeoTIFF (- for stdout); a folder for several inputs."),
    from_list: Optional[str] = typer.Option(None, "--from-list", metavar="FILE",
                                            help="Inputs, one path a line (adds to IN...)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Several inputs: keep the outputs that exist "
                                       "(complete: outputs are published atomically), translate the rest."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Several inputs: local worker processes, each "
                                          "keeping its model loaded [default: 1]."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Several inputs: dask.distributed scheduler "
                                            "address (tcp://host:8786), one task per scene."),
    from_: Optional[str] = typer.Option(None, "--from", help="Source modality (default: file tags, else band count)."),
    model: str = typer.Option("default", "--model", "-m",
                              help="default (the model shipped with earthgen), identity, luminance, or a checkpoint "
                                   "directory."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Bands of IN to use, 1-based, e.g. 4,3,2."),
    cond: List[str] = typer.Option([], "--cond", metavar="MOD=PATH",
                                   help="Another source of the same place (repeatable), warped to IN's grid."),
    steps: Optional[int] = opt.ModelSteps,
    sampler: Optional[Sampler] = opt.ModelSampler,
    guidance: Optional[float] = opt.ModelGuidance,
    estimate: Optional[Estimate] = opt.EstimateOpt,
    confidence: Optional[str] = typer.Option(None, "--confidence", metavar="OUT.tif",
                                             help="Also write the model's per-pixel confidence (0..1) raster."),
    tile: Optional[int] = opt.Tile,
    overlap: Optional[int] = opt.Overlap,
    batch_size: Optional[int] = opt.BatchSize,
    seed: int = opt.Seed,
    max_pixels: int = opt.MaxPixels,
    device: str = opt.Device,
    overwrite: bool = opt.Overwrite,
    cog: bool = opt.Cog,
    allow_no_crs: bool = opt.AllowNoCrs,
    preview: Optional[str] = typer.Option(None, "--preview", help="Also write a PNG quicklook: input | output."),
    quiet: bool = opt.Quiet,
    json_out: bool = opt.JsonOut,
) -> None:
    """Translate a whole georeferenced scene to another modality, tile by tile.

    The output keeps the input's CRS, transform, nodata, band descriptions and tags, and adds
    EARTHGEN_* provenance tags. Example: earthgen translate s2_rgb.tif --to pan --model luminance -o pan.tif
    """
    from earthgen_cli.errors import EarthgenError
    from earthgen_cli.inference.scene_translate import OutputOptions, SourceSpec
    from earthgen_cli.inference.translate_job import TranslateSettings
    from earthgen_cli.io.publish import check_output, same_path
    from earthgen_cli.io.raster import parse_bands

    inputs = list(sources or [])
    if from_list is not None:
        from earthgen_cli.inference.many import read_list

        inputs += read_list(from_list)
    if not inputs:
        raise EarthgenError("no input: give IN... or --from-list FILE")
    settings = TranslateSettings(model, device, steps=steps, sampler=sampler and sampler.value, guidance=guidance,
                                 estimate=estimate, batch_size=batch_size, tile=tile, overlap=overlap, seed=seed)
    if len(inputs) > 1 or from_list is not None:
        return _translate_many(inputs, locals())
    if skip_existing or workers is not None or scheduler is not None:
        raise EarthgenError("--skip-existing, --workers and --scheduler apply to several inputs (IN... or --from-list)")
    source = inputs[0]
    extra = []
    for item in cond:
        mod, sep, path = item.partition("=")
        if not sep or not mod or not path:
            raise EarthgenError(f"--cond {item!r}: expected MOD=PATH, e.g. --cond nir=scene_nir.tif")
        extra.append(SourceSpec(path, mod.strip()))
    if preview is not None:
        if "-" in (source, output):
            raise EarthgenError("--preview needs IN and OUT to be files, not stdin/stdout")
        if any(same_path(preview, o) for o in (output, confidence) if o is not None):
            raise EarthgenError(f"--preview {preview}: is also an output of this command; give the PNG its own name")
        check_output(preview, overwrite, [source, *(s.path for s in extra)])
    translator = settings.load()
    selected = parse_bands(bands, source)
    conf_out = None
    if confidence is not None:
        conf_out = OutputOptions(confidence, overwrite=overwrite, cog=cog, allow_no_crs=allow_no_crs)
    summary = settings.run(
        translator,
        [SourceSpec(source, from_, selected), *extra],
        to,
        OutputOptions(output, overwrite=overwrite, cog=cog, allow_no_crs=allow_no_crs, max_pixels=max_pixels),
        quiet=quiet,
        confidence=conf_out,
    )
    if preview is not None:
        from earthgen_cli.io.preview import write_preview

        write_preview([source, output], preview, bands=[selected, None], overwrite=overwrite)
    if json_out:
        if output == "-":
            typer.echo(summary.to_json(), err=True)
        else:
            typer.echo(summary.to_json())


def _translate_many(inputs: list[str], a: dict) -> None:
    """Several scenes: one output per input in the folder -o, per-scene failures reported, a summary."""
    import sys

    from earthgen_cli.errors import EarthgenError
    from earthgen_cli.inference.many import ManyOptions, plan, run_many
    from earthgen_cli.io.raster import parse_bands

    for flag in ("cond", "confidence", "preview"):
        if a[flag]:
            raise EarthgenError(f"--{flag} applies to one input; translate several inputs without it")
    if a["output"] == "-":
        raise EarthgenError("several inputs: -o must be a folder, not stdout")
    if a["workers"] is not None and a["workers"] < 1:
        raise EarthgenError(f"--workers must be at least 1, got {a['workers']}")
    jobs, skipped = plan(inputs, a["output"], a["skip_existing"], a["overwrite"])
    opts = ManyOptions(
        to=a["to"], settings=a["settings"], source_modality=a["from_"], bands=parse_bands(a["bands"], inputs[0]),
        overwrite=a["overwrite"], cog=a["cog"], allow_no_crs=a["allow_no_crs"], max_pixels=a["max_pixels"])
    summary = run_many(jobs, skipped, a["output"], opts, a["workers"], a["scheduler"],
                       lambda line: print(f"earthgen: error: {line}", file=sys.stderr), quiet=a["quiet"])
    c = summary.counts()
    if a["json_out"]:
        typer.echo(summary.to_json())
    else:
        typer.echo(f"{a['output']}: {c['done']} translated, {c['skipped']} skipped (exist), {c['failed']} failed "
                   f"in {summary.seconds:.1f} s on {summary.workers} worker(s)")
    if c["failed"]:
        raise typer.Exit(1)

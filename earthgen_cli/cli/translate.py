from __future__ import annotations

from typing import List, Optional

import typer

from earthgen_cli.cli import options as opt

NAME = "translate"


def command(
    source: str = typer.Argument(..., metavar="IN", help="Input raster (any path rasterio opens; - for stdin)."),
    to: str = typer.Option(..., "--to", help="Target modality: rgb, sar, nir, pan, ms, osm."),
    output: str = typer.Option(..., "--output", "-o", help="Output GeoTIFF (- for stdout)."),
    from_: Optional[str] = typer.Option(None, "--from", help="Source modality (default: file tags, else band count)."),
    model: str = typer.Option("default", "--model", "-m",
                              help="default (the model shipped with earthgen), identity, luminance, or a checkpoint "
                                   "directory."),
    bands: Optional[str] = typer.Option(None, "--bands", help="Bands of IN to use, 1-based, e.g. 4,3,2."),
    cond: List[str] = typer.Option([], "--cond", metavar="MOD=PATH",
                                   help="Another source of the same place (repeatable), warped to IN's grid."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps (checkpoint models; default 8)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="euler, heun or euler-maruyama (checkpoint models)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale; 1 = off."),
    estimate: Optional[str] = opt.EstimateOpt,
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
    from earthgen_cli.inference.engine import OutputOptions, SourceSpec, TileOptions, resolve_tiling, translate_scene
    from earthgen_cli.errors import EarthgenError
    from earthgen_cli.inference.translator import load_translator
    from earthgen_cli.io.publish import check_output, same_path
    from earthgen_cli.io.raster import parse_bands

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
    translator = load_translator(model, device=device, steps=steps, sampler=sampler, guidance=guidance,
                                  estimate=estimate, batch_size=batch_size)
    tile, overlap = resolve_tiling(tile, overlap, getattr(translator, "native_tile", None), 512)
    selected = parse_bands(bands, source)
    conf_out = None
    if confidence is not None:
        conf_out = OutputOptions(confidence, overwrite=overwrite, cog=cog, allow_no_crs=allow_no_crs)
    summary = translate_scene(
        [SourceSpec(source, from_, selected), *extra],
        to,
        translator,
        TileOptions(tile=tile, overlap=overlap, batch_size=batch_size, seed=seed),
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

"""Options shared by several commands, defined once (rasterio's rio/options.py pattern)."""

from __future__ import annotations

import typer

from earthgen_cli.flow.choices import DEFAULT_STEPS, Sampler

Overwrite = typer.Option(False, "--overwrite", help="Replace an existing output file.")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar on stderr.")
JsonOut = typer.Option(False, "--json", help="Print a machine-readable summary on stdout.")
AllowNoCrs = typer.Option(False, "--allow-no-crs", help="Accept rasters without a CRS (output has none either).")
Cog = typer.Option(False, "--cog", help="Write a Cloud Optimized GeoTIFF (tiled, with overviews).")
Tile = typer.Option(None, "--tile", help="Tile side in pixels (default: the crop side a checkpoint was trained "
                   "on, else 512).")
Overlap = typer.Option(None, "--overlap", help="Overlap between neighbouring tiles in pixels, < tile/2 "
                       "(default: tile/4, at most 64).")
BatchSize = typer.Option(None, "--batch-size", help="Tiles per model call (default: 4 on CPU, 16 on CUDA); one batch "
                         "size gives bit-identical results, another differs by float rounding.")
MaxPixels = typer.Option(4_000_000_000, "--max-pixels", help="Refuse an output grid larger than this; an output "
                         "that would not fit the free space of its folder (uncompressed) is refused too.")
Seed = typer.Option(0, "--seed", help="Seed: noise is a function of (seed, position on the scene grid).")
Device = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N.")
# Generation (joint, inpaint, extend)
Checkpoint = typer.Option(None, "--model", "-m", help="Checkpoint directory of the unified model "
                          "(default: the model shipped with earthgen).")
Steps = typer.Option(DEFAULT_STEPS, "--steps", help="Sampling steps.")
FillSteps = typer.Option(None, "--steps", help=f"Sampling steps (default: 1, the one-call fill, for a model "
                         f"whose context path reads a classical fill, as the default model's does; else {DEFAULT_STEPS}).")
Fill = typer.Option(None, "--fill", help="The classical fill such a model's one-call fill starts from: blend "
                    "(default: the mean of the other two), coherence (edges and lines around the hole run on "
                    "across it at full contrast; best for narrow gaps) or harmonic (the smoothest surface "
                    "through the surroundings).")
Guidance = typer.Option(1.0, "--guidance", help="Classifier-free guidance scale (1 = none).")
Resample = typer.Option(1, "--resample", min=1, max=64, help="RePaint resampling: take each step N times, "
                        "going back with fresh noise in between, so the fill agrees better with its "
                        "surroundings (N x the model calls).")
SamplerName = typer.Option(Sampler.euler, "--sampler", help="euler, heun or euler-maruyama.")
Cond = typer.Option([], "--cond", metavar="MOD=PATH", help="Condition raster of modality MOD, warped to the output "
                   "grid (repeatable).")
GenTile = typer.Option(None, "--tile", help="Tile side in pixels; tiles are blended in latent space at every step "
                      "(default: the crop side the checkpoint was trained on, else 256).")
Prompt = typer.Option(None, "--prompt", help="Text condition (checkpoints trained with text; needs the [text] extra).")
EstimateOpt = typer.Option(None, "--estimate", help="sample (default: one draw, realistic texture) or mean "
                           "(the posterior mean in one model call: smoother, closest to the truth on average).")
# The same sampling options for translate, whose analytic models take none (None: the model's default)
ModelSteps = typer.Option(None, "--steps", help=f"Sampling steps (checkpoint models; default {DEFAULT_STEPS}).")
ModelSampler = typer.Option(None, "--sampler", help="euler, heun or euler-maruyama (checkpoint models).")
ModelGuidance = typer.Option(None, "--guidance", help="Classifier-free guidance scale; 1 = off.")

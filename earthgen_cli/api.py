"""earthgen from Python, on xarray: the commands' own engine behind functions that take and return
`xarray.DataArray`s georeferenced with rioxarray (`.rio.crs`, transform, nodata, band coordinate).

    import rioxarray, earthgen_cli as eg
    rgb = rioxarray.open_rasterio("s2_rgb.tif", chunks={"x": 1024, "y": 1024})   # lazy, dask-backed
    nir = eg.translate(rgb, to="nir", source="rgb", estimate="mean")
    nir.rio.to_raster("nir.tif")

How it works (one implementation with the CLI): the input is streamed to a temporary GeoTIFF chunk
by chunk (`rio.to_raster(windowed=True)`: a dask-backed array is computed one chunk at a time, never
whole), the same streaming engine as `earthgen translate` / `inpaint` / `extend` / `joint` writes
its output GeoTIFF, and that file is opened with `rioxarray.open_rasterio`. Give `output=` (a path)
to keep the result there and get it back lazily (dask-backed, read by windows); without it the
result is loaded into memory and the temporary files are removed. Noise is keyed by (seed, position
on the grid), so the same seed gives the values the CLI gives for the same scene. Provenance is in
`attrs` (the EARTHGEN_* tags the CLI writes). Errors are `earthgen_cli.errors.EarthgenError`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from earthgen_cli.errors import EarthgenError
from earthgen_cli.flow.choices import DEFAULT_STEPS
from earthgen_cli.io.dataarray import read_dataarray, write_dataarray

__all__ = ["Model", "load_model", "translate", "joint", "inpaint", "extend"]


@dataclass
class Model:
    """A model loaded once and reused across calls (`load_model`): the translator that `translate`
    uses and the scene model of `joint` / `inpaint` / `extend`, each built on first use."""

    spec: str = "default"  # default, identity, luminance, or a checkpoint directory
    device: str = "auto"
    _translators: dict = field(default_factory=dict, repr=False)
    _scene: Any = field(default=None, repr=False)

    def translator(self, settings):
        """The translator of `settings` (a `TranslateSettings` of this model), loaded once per key."""
        key = settings.translator_key()
        if key not in self._translators:
            self._translators[key] = settings.load()
        return self._translators[key]

    def scene_model(self):
        if self.spec in ("identity", "luminance"):
            raise EarthgenError(f"model {self.spec!r} cannot generate; joint, inpaint and extend need a checkpoint "
                                f"(or the default model)")
        if self._scene is None:
            from earthgen_cli.inference.runtime import load_runtime

            self._scene = load_runtime(self.spec, self.device)
        return self._scene


def load_model(model: str = "default", device: str = "auto") -> Model:
    """A reusable model: pass it as `model=` to every function to load the weights once."""
    return Model(str(model), device)


def _model(model: str | Model, device: str) -> Model:
    return model if isinstance(model, Model) else Model(str(model), device)


# -- DataArray <-> GeoTIFF: earthgen_cli.io.dataarray --------------------------------------------

@contextlib.contextmanager
def _workspace(output: str | None) -> Iterator[tuple[Path, str]]:
    """A temporary folder for the streamed inputs, and where the output goes: owner-named
    (io/scratch), so the folder of a killed notebook kernel is removed by the next call."""
    from earthgen_cli.io.scratch import temp_dir

    tmp = temp_dir(tempfile.gettempdir(), ".api")
    try:
        yield tmp, str(output) if output is not None else str(tmp / "out.tif")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _conditions(cond: Mapping[str, Any] | None, tmp: Path) -> list[tuple[str, str]]:
    from earthgen_cli.modalities import get_modality

    out = []
    for mod, da in (cond or {}).items():
        name = get_modality(mod).name
        out.append((name, write_dataarray(da, tmp / f"cond_{name}.tif", f"cond[{mod!r}]")))
    return out


def _scene_options(m: Model, tile, overlap, batch_size, seed, prompt, max_pixels):
    from earthgen_cli.inference.scene_setup import scene_options
    from earthgen_cli.io.publish import SCENE_MAX_PIXELS

    sm = m.scene_model()
    return sm, scene_options(sm, tile, overlap, batch_size, seed, prompt, max_pixels or SCENE_MAX_PIXELS)


# -- the four functions -------------------------------------------------------------------------

def translate(da: Any, to: str, model: str | Model = "default", *, source: str | None = None,
              cond: Mapping[str, Any] | None = None, steps: int | None = None, sampler: str | None = None,
              guidance: float | None = None, estimate: str | None = None, tile: int | None = None,
              overlap: int | None = None, batch_size: int | None = None, seed: int = 0, device: str = "auto",
              output: str | None = None, overwrite: bool = False):
    """`earthgen translate` on a DataArray: `da` (band, y, x) of modality `source` (default: its
    EARTHGEN_MODALITY attribute, else the band count) to modality `to`. `cond`: other modalities of
    the same place (DataArrays, warped onto `da`'s grid)."""
    from earthgen_cli.inference.scene_translate import OutputOptions, SourceSpec
    from earthgen_cli.inference.translate_job import TranslateSettings

    m = _model(model, device)
    settings = TranslateSettings(m.spec, m.device, steps=steps, sampler=sampler, guidance=guidance, estimate=estimate,
                                 batch_size=batch_size, tile=tile, overlap=overlap, seed=seed)
    tr = m.translator(settings)
    source = source or _declared_modality(da)
    with _workspace(output) as (tmp, out):
        src = write_dataarray(da, tmp / "in.tif", "translate input")
        extra = [SourceSpec(p, mod) for mod, p in _conditions(cond, tmp)]
        settings.run(tr, [SourceSpec(src, source), *extra], to, OutputOptions(out, overwrite=overwrite))
        return read_dataarray(out, lazy=output is not None)


def inpaint(da: Any, mask: Any = "nodata", model: str | Model = "default", *, source: str | None = None,
            cond: Mapping[str, Any] | None = None, steps: int | None = None, fill: str | None = None,
            sampler: str = "euler", guidance: float = 1.0, resample: int = 1, seed: int = 0, prompt: str | None = None,
            tile: int | None = None, overlap: int | None = None, batch_size: int | None = None, device: str = "auto",
            max_pixels: int | None = None, output: str | None = None, overwrite: bool = False):
    """`earthgen inpaint`: regenerate the pixels where `mask` (a DataArray on `da`'s grid, non-zero
    = regenerate) is set, or `da`'s nodata pixels (`mask="nodata"`); the others are copied unchanged.
    `fill`: "blend" (None), "coherence" or "harmonic", as `--fill`."""
    from earthgen_cli.inference.inpaint import inpaint_scene
    from earthgen_cli.inference.multidiffusion import fill_method, fill_steps, sampling_options

    m = _model(model, device)
    sm, scene = _scene_options(m, tile, overlap, batch_size, seed, prompt, max_pixels)
    opts = sampling_options(fill_steps(steps, sm.cfg), sampler, guidance, resample)
    with _workspace(output) as (tmp, out):
        src = write_dataarray(da, tmp / "in.tif", "inpaint input")
        mask_path = "nodata" if isinstance(mask, str) and mask == "nodata" else \
            write_dataarray(mask, tmp / "mask.tif", "inpaint mask")
        with fill_method(sm.model, fill, sm.path):
            inpaint_scene(sm, src, mask_path, out, _conditions(cond, tmp), scene, opts,
                          source or _declared_modality(da), overwrite)
        return read_dataarray(out, lazy=output is not None)


def extend(da: Any, by: int, side: str | Sequence[str] = "all", model: str | Model = "default", *,
           source: str | None = None, cond: Mapping[str, Any] | None = None, steps: int | None = None,
           fill: str | None = None, sampler: str = "euler", guidance: float = 1.0, resample: int = 1, seed: int = 0,
           prompt: str | None = None, tile: int | None = None, overlap: int | None = None,
           batch_size: int | None = None, device: str = "auto", max_pixels: int | None = None,
           output: str | None = None, overwrite: bool = False):
    """`earthgen extend`: outpaint `by` pixels past the chosen sides; the old pixels are unchanged.
    `fill`: as in `inpaint`."""
    from earthgen_cli.inference.extend import extend_scene, parse_sides
    from earthgen_cli.inference.multidiffusion import fill_method, fill_steps, sampling_options

    sides = parse_sides(side if isinstance(side, str) else ",".join(side))
    m = _model(model, device)
    sm, scene = _scene_options(m, tile, overlap, batch_size, seed, prompt, max_pixels)
    opts = sampling_options(fill_steps(steps, sm.cfg), sampler, guidance, resample)
    with _workspace(output) as (tmp, out):
        src = write_dataarray(da, tmp / "in.tif", "extend input")
        with fill_method(sm.model, fill, sm.path):
            extend_scene(sm, src, by, sides, out, _conditions(cond, tmp), scene, opts,
                         source or _declared_modality(da), overwrite)
        return read_dataarray(out, lazy=output is not None)


def joint(pair: str | Sequence[str], bbox: Sequence[float], gsd: float, model: str | Model = "default", *,
          bbox_crs: str = "EPSG:4326", crs: str = "utm", cond: Mapping[str, Any] | None = None,
          osm: str | None = None, steps: int = DEFAULT_STEPS, sampler: str = "euler", guidance: float = 1.0,
          seed: int = 0, prompt: str | None = None, tile: int | None = None, overlap: int | None = None,
          batch_size: int | None = None, device: str = "auto", max_pixels: int = 100_000_000,
          output: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """`earthgen joint`: the modalities of `pair` generated together over `bbox` (W, S, E, N in
    `bbox_crs`) at `gsd` m/px; `osm`: an .osm.pbf/.geojson file rendered as the osm condition.
    Returns {modality: DataArray}; `output` is then a folder (one GeoTIFF per modality)."""
    from earthgen_cli.inference.joint import JointRequest, generate_joint
    from earthgen_cli.inference.multidiffusion import sampling_options
    from earthgen_cli.io.grid import bbox_grid
    from earthgen_cli.modalities import parse_modality_list

    mods = parse_modality_list(pair if isinstance(pair, str) else ",".join(pair))
    grid = bbox_grid(",".join(str(float(v)) for v in bbox), gsd, bbox_crs, crs, max_pixels)
    m = _model(model, device)
    sm, scene = _scene_options(m, tile, overlap, batch_size, seed, prompt, None)
    opts = sampling_options(steps, sampler, guidance)
    with _workspace(None) as (tmp, _):
        out_dir = output if output is not None else str(tmp / "joint")
        summary = generate_joint(sm, JointRequest(tuple(mods), grid, out_dir, _conditions(cond, tmp), osm, 1,
                                                  overwrite), scene, opts)
        return {Path(f).stem: read_dataarray(f, lazy=output is not None) for f in summary.files}


def _declared_modality(da: Any) -> str | None:
    """The modality an earthgen output (or a file opened with its tags) declares in its attrs."""
    value = getattr(da, "attrs", {}).get("EARTHGEN_MODALITY")
    return str(value) if value else None

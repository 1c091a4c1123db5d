"""The translator interface the scene engine drives, and the analytic translators. The unified model
implements it in model_translator.py; loader.py turns a `--model` name into either.

A translator maps a batch of source tiles (raw units, per modality) to target tiles (raw units of
the target modality). It owns its normalisation (a checkpoint carries its own); the engine owns
tiling, blending, nodata, casting and writing. Noise for generative translators must come from
`earthgen_cli.inference.noise.NoiseField` keyed by `TileBatch.origins`, so that a result does not
depend on tile order, batch size or number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.modalities import luminance


@dataclass(frozen=True)
class TileBatch:
    sources: Mapping[str, np.ndarray]  # modality -> (B, C, H, W) float32 (float64 for 32-bit integer and
    # float64 rasters), raw units, invalid values set to 0
    valid: np.ndarray  # (B, H, W) bool: True where every source band is valid
    origins: tuple[tuple[int, int], ...]  # (row, col) of each tile's top-left on the scene grid
    gsd: float | None = None  # metres per pixel of the scene grid, None when unknown
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. a text prompt

    @property
    def size(self) -> int:
        return int(self.valid.shape[0])


class Translator(Protocol):
    name: str
    tile_multiple: int  # tile sides must be a multiple of this (codec factor x patch size)
    native_tile: int | None  # the tile side it works best at (a checkpoint's training crop); None: any
    batch_size: int | None  # tiles per call it is built for (a model's forward batch); None: any
    bandwise: bool  # output band b is source band b (identity): nodata masks stay per band
    has_confidence: bool  # translate_with_confidence returns a confidence raster, not None

    def check(self, sources: Sequence[str], target: str) -> None:
        """Raise EarthgenError when this translator cannot map `sources` to `target`."""

    def output_bands(self, target: str, source_bands: Mapping[str, int]) -> int: ...

    def output_dtype(self, target: str, source_dtypes: Mapping[str, str]) -> str: ...

    def translate(self, batch: TileBatch, target: str) -> np.ndarray:
        """(B, C_out, H, W) floating values in the target modality's raw units."""

    def translate_with_confidence(self, batch: TileBatch, target: str) -> tuple[np.ndarray, np.ndarray | None]:
        """`translate`'s output and a (B, 1, H, W) confidence in (0, 1], None without one."""

    def describe(self) -> dict[str, str]:
        """Provenance written into the output's tags."""


class AnalyticTranslator:
    """What the analytic translators share: any tile, any batch, no confidence. A subclass
    supplies `check`, `output_bands`, `output_dtype`, `translate` and `describe`."""

    name = "analytic"
    tile_multiple = 1
    native_tile: int | None = None
    batch_size: int | None = None
    bandwise = False
    has_confidence = False

    def translate_with_confidence(self, batch: TileBatch, target: str) -> tuple[np.ndarray, None]:
        return self.translate(batch, target), None


class IdentityTranslator(AnalyticTranslator):
    """Same modality in, same out, bit for bit: for tests and pipeline benchmarks."""

    name = "identity"
    bandwise = True  # output band b is source band b: nodata stays per band

    def check(self, sources: Sequence[str], target: str) -> None:
        if list(sources) != [target]:
            raise EarthgenError(
                f"--model identity maps a modality to itself; got {'+'.join(sources)} -> {target}"
            )

    def output_bands(self, target: str, source_bands: Mapping[str, int]) -> int:
        return source_bands[target]

    def output_dtype(self, target: str, source_dtypes: Mapping[str, str]) -> str:
        return source_dtypes[target]

    def translate(self, batch: TileBatch, target: str) -> np.ndarray:
        return batch.sources[target]

    def describe(self) -> dict[str, str]:
        return {"EARTHGEN_MODEL": "identity"}


class LuminanceTranslator(AnalyticTranslator):
    """rgb -> pan as the BT.601 luminance of the RGB bands: an analytic baseline."""

    name = "luminance"

    def check(self, sources: Sequence[str], target: str) -> None:
        if list(sources) != ["rgb"] or target != "pan":
            raise EarthgenError(
                f"--model luminance maps rgb -> pan only; got {'+'.join(sources)} -> {target}"
            )

    def output_bands(self, target: str, source_bands: Mapping[str, int]) -> int:
        return 1

    def output_dtype(self, target: str, source_dtypes: Mapping[str, str]) -> str:
        return source_dtypes["rgb"]  # same units and scale as the RGB input

    def translate(self, batch: TileBatch, target: str) -> np.ndarray:
        return luminance(batch.sources["rgb"])

    def describe(self) -> dict[str, str]:
        return {"EARTHGEN_MODEL": "luminance (BT.601)"}


ANALYTIC_TRANSLATORS: dict[str, type] = {
    "identity": IdentityTranslator,
    "luminance": LuminanceTranslator,
}

"""One scene translated with the translate command's settings: the call that `earthgen translate IN
-o OUT`, `earthgen_cli.translate` (the API) and each scene of `earthgen translate IN... -o DIR` make,
so the three load the model and tile a scene the same way and give the same output for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from earthgen_cli.inference.scene_translate import OutputOptions, SourceSpec, TranslateSummary
    from earthgen_cli.inference.translator import Translator

@dataclass(frozen=True)
class TranslateSettings:
    """The model and tiling settings of a translate call; None: the model's own default."""

    model: str = "default"  # default, identity, luminance, or a checkpoint directory
    device: str = "auto"
    steps: int | None = None
    sampler: str | None = None
    guidance: float | None = None
    estimate: str | None = None
    batch_size: int | None = None  # tiles per forward pass
    tile: int | None = None
    overlap: int | None = None
    seed: int = 0

    def translator_key(self) -> tuple:
        """What the loaded translator depends on (not tiling or seed): a cache key for reusing it."""
        return (self.model, self.device, self.steps, self.sampler, self.guidance, self.estimate, self.batch_size)

    def load(self) -> Translator:
        from earthgen_cli.inference.loader import load_translator

        return load_translator(self.model, device=self.device, batch_size=self.batch_size, steps=self.steps,
                               sampler=self.sampler, guidance=self.guidance, estimate=self.estimate)

    def run(self, translator: Translator, sources: Sequence[SourceSpec], to: str, output: OutputOptions, *,
            quiet: bool = True, confidence: OutputOptions | None = None) -> TranslateSummary:
        """`sources[0]`'s scene (the others warped onto its grid) translated to `to` by `translator`
        (loaded with `load`, or reused), tiled at --tile/--overlap, else the model's native tile."""
        from earthgen_cli.inference.scene_translate import TileOptions, translate_scene
        from earthgen_cli.inference.tiling import TRANSLATE_TILE, resolve_tiling

        tile, overlap = resolve_tiling(self.tile, self.overlap, translator.native_tile,
                                       TRANSLATE_TILE)
        return translate_scene(sources, to, translator,
                               TileOptions(tile=tile, overlap=overlap, batch_size=self.batch_size, seed=self.seed),
                               output, quiet=quiet, confidence=confidence)

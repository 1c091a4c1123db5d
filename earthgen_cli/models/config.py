"""The unified model's configuration and the preset registry (tiny ... paper).

A preset fixes the architecture; the modalities and their band counts come from the dataset the
model is trained on and are filled in by `model_config`. The whole `ModelConfig` is written into
every checkpoint's config.json, so a checkpoint rebuilds its model without any other file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from earthgen_cli.modalities import MODALITY_NAMES


class PredictionTarget(str, enum.Enum):
    """What the generator's head predicts (flow.path converts between them)."""

    velocity = "velocity"
    x0 = "x0"


class CodecKind(str, enum.Enum):
    pixel = "pixel"  # space-to-depth by `factor`, no parameters
    kl = "kl"  # a small diffusers AutoencoderKL per modality, trained by the codec stage


@dataclass(frozen=True)
class CodecConfig:
    kind: CodecKind = CodecKind.pixel
    factor: int = 2  # pixels per latent cell along each side
    latent_channels: int = 4  # kl only (pixel: bands * factor^2)
    widths: tuple[int, ...] = (32, 32)  # kl encoder/decoder block widths; factor = 2^(len-1)
    layers_per_block: int = 1

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"codec factor must be >= 1, got {self.factor}")
        if self.kind is CodecKind.kl:
            if 2 ** (len(self.widths) - 1) != self.factor:
                raise ValueError(f"kl codec widths {self.widths} downsample by {2 ** (len(self.widths) - 1)}, "
                                 f"not by factor {self.factor}")
            if min(self.widths) % min(32, self.widths[0]) or self.latent_channels < 1:
                raise ValueError(f"kl codec widths {self.widths} must be multiples of their group count")


MAX_PARAMETERS = 1e11  # larger than any model here by 100x; a config beyond it is damaged, not big


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "tiny"
    modalities: tuple[str, ...] = ("rgb", "sar")
    bands: dict[str, int] = field(default_factory=lambda: {"rgb": 3, "sar": 2})
    codec: CodecConfig = CodecConfig()
    hidden: int = 32
    heads: int = 2
    scene_depth: int = 1
    gen_depth: int = 1
    patch: int = 1
    mlp_ratio: float = 4.0
    target: PredictionTarget = PredictionTarget.velocity
    confidence: bool = True  # an extra log-variance channel per slot (C-DiffSET)
    adapter_hidden: int = 32  # residual adapter width (Any2Any); 0 = no adapters
    gsd: bool = True  # ground sampling distance as a global condition (Text2Earth)
    text_dim: int = 0  # text embedding size; 0 = no text condition
    # The generator also gets the other slots' latents token by token (models/earthgen.py). False
    # here so that checkpoints written before it existed load as they were; every preset sets True.
    aligned: bool = False
    # A zero-initialised 1x1 linear map from each other slot's latent straight to this slot's
    # prediction, gated like the aligned path (models/earthgen.py): pixel detail inside a token
    # without going through the hidden width. False: checkpoints from before it load as they were.
    aligned_skip: bool = False
    # Width of the pixel path (models/earthgen.py `PixelPath`): a small dilated conv net at full
    # pixel resolution from each other slot to this slot's prediction, zero-initialised, gated like
    # the aligned path; 0 = none (checkpoints from before it load as they were).
    pixel_path: int = 0
    # A GroupNorm before every SiLU of the pixel path's trunk. Without it the path can die: in v7-v9
    # its last convolution's outputs sat near -53, where SiLU and its gradient are ~0, so the head
    # got no signal and the path added ~1e-5 of the prediction. False: checkpoints from before it
    # load as they were; a run that turns it on re-makes the path (flow.init_from).
    pixel_norm: bool = False
    # The pixel path's share of a slot's prediction scaled by that slot's own time: it corrects a
    # target drawn from noise (t=1: translation) and fades out as the target's own pixels show
    # through (t -> 0), where the transformer already sees them. Without it the low-noise samples,
    # where the right correction is ~0 and the confident NLL weights them most, held the path near
    # zero (a least-squares probe explains 59 % of v9's ms->nir residual with a 3x3 linear map).
    pixel_by_time: bool = False
    # A pixel path of its own (stem, trunk and head) per (source, target) pair instead of one trunk
    # shared by every pair. Shared, the trunk learnt a compromise that helped no pair much (on v9,
    # lr 3e-3: all nine pairs, ms->nir 19.0 dB; nir+ms alone, 22.4 dB; MODEL_CARD "After v9"). False:
    # checkpoints from before it load as they were; a run that turns it on re-makes the path.
    pixel_pairs: bool = False
    # With model.pixel_pairs: each pair's path sees the transformer's prediction of the target
    # beside the source (its stem reads both), so its correction can blend or rescale that
    # prediction instead of only adding a function of the source. Why: for v12's rgb->nir a
    # per-pixel linear map of the source alone, fit on train chips, makes the test residual worse
    # (explained -1.22), with the prediction beside it explains 0.50 (benchmarks/residual_probe.py
    # --source-only). Turned on from a checkpoint without it, each stem gets zero weights for the
    # prediction's channels: the run starts from exactly that checkpoint's model.
    pixel_sees_pred: bool = False
    # Trained with per-token times (flow.masked: known tokens clean at t=0 beside noisy ones in the
    # same slot), so `inpaint` and `extend` give it the known tokens clean instead of re-imposing
    # them on their noise path (RePaint), which left v13's fills unrelated to their surroundings.
    # No parameter depends on it: False for checkpoints trained without it, which sample as before.
    token_times: bool = False
    # Width of the context path (models/earthgen.py `ContextPath`): a dilated conv net over a slot's
    # latent grid from its known cells and the transformer's prediction to a correction of its
    # generated cells, used only with per-token times (inpaint, extend); 0 = none. Zero-initialised:
    # grown on a checkpoint without it (flow.init_from), the run starts from exactly that model.
    context_path: int = 0
    # The context path also reads a fill of the slot's generated cells from its known ones
    # (models/earthgen.py `guided_fill`: the harmonic fill, Laplace's equation with the known cells
    # as its boundary, at pixel resolution through a pixel codec, plus the detail of any wholly clean
    # other slot carried in by a per-sample least-squares map fit on the known cells), and its
    # direct map starts as prediction + time * (fill - prediction): the one-call fill (t=1) starts
    # as that fill, which the trunk then corrects. Why: on held-out chips a harmonic fill of a 24 px
    # hole scores RMSE 44 / corr 0.67 where v14's one-call fill scored 81 / 0.20 and the known
    # pixels' mean 69.5; as v15's path, 48.8, and with the chip's NIR as guide 75.5 against v14's
    # 169.2 (benchmarks/inpaint_chips.py).
    # Needs model.target x0. False: checkpoints from before it load as they were; a run that turns
    # it on re-makes the context path.
    context_fill: bool = False

    def __post_init__(self) -> None:
        if self.context_fill and not self.context_path:
            raise ValueError("model.context_fill needs model.context_path (a width > 0)")
        if self.context_fill and PredictionTarget(self.target) is not PredictionTarget.x0:
            raise ValueError("model.context_fill needs model.target: x0 (the fill is a clean-latent estimate)")
        if self.pixel_sees_pred and not self.pixel_pairs:
            raise ValueError("model.pixel_sees_pred needs model.pixel_pairs: true")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be a non-empty list without repeats, got {self.modalities}")
        for m in self.modalities:
            if m not in MODALITY_NAMES:
                raise ValueError(f"unknown modality {m!r}")
            if self.bands.get(m, 0) < 1:
                raise ValueError(f"bands has no count for modality {m}")
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ValueError(f"hidden {self.hidden} must split into {self.heads} heads of even size")
        if self.hidden % 4:
            raise ValueError(f"hidden {self.hidden} must be a multiple of 4 (2-D sin-cos positions)")
        if min(self.scene_depth, self.gen_depth, self.patch) < 1:
            raise ValueError("scene_depth, gen_depth and patch must be >= 1")
        for name, value, top in (("hidden", self.hidden, 2**15), ("scene_depth", self.scene_depth, 1024),
                                 ("gen_depth", self.gen_depth, 1024), ("patch", self.patch, 64),
                                 ("codec factor", self.codec.factor, 64), ("adapter_hidden", self.adapter_hidden, 2**15),
                                 ("pixel_path", self.pixel_path, 2**12),
                                 ("text_dim", self.text_dim, 2**15), ("latent_channels", self.codec.latent_channels, 2**12),
                                 *((f"bands of {m}", self.bands[m], 2**12) for m in self.modalities)):
            if not 0 <= value <= top:
                raise ValueError(f"{name} {value} is outside 0..{top}: not a model this program can build")
        if not 0 < self.mlp_ratio <= 64:
            raise ValueError(f"mlp_ratio {self.mlp_ratio} is outside (0, 64]")
        if self.approx_parameters() > MAX_PARAMETERS:
            raise ValueError(f"the model would have about {self.approx_parameters():.3g} parameters "
                             f"(more than {MAX_PARAMETERS:.0e}): not a model this program can build")

    def approx_parameters(self) -> float:
        """Transformer blocks only (attention 4 h^2, MLP 2 r h^2, AdaLN 6 h^2 each): a lower bound."""
        return (self.scene_depth + self.gen_depth) * (10 + 2 * self.mlp_ratio) * float(self.hidden) ** 2

    def latent_channels(self, modality: str) -> int:
        if self.codec.kind is CodecKind.pixel:
            return self.bands[modality] * self.codec.factor**2
        return self.codec.latent_channels

    @property
    def tile_multiple(self) -> int:
        """Image sides must be a multiple of this: codec factor x patch size."""
        return self.codec.factor * self.patch


def _kl(factor: int, widths: tuple[int, ...], latent: int = 4, layers: int = 1) -> CodecConfig:
    return CodecConfig(CodecKind.kl, factor, latent, widths, layers)


# Architecture only; `model_config` adds the modalities and bands of the data.
PRESETS: dict[str, dict[str, Any]] = {
    # Tests: seconds on a CPU.
    "tiny": dict(codec=CodecConfig(CodecKind.pixel, 2), hidden=32, heads=2, scene_depth=1, gen_depth=1,
                 patch=1, adapter_hidden=16, aligned=True),
    # Learns something real on ../shared/data in about an hour on 2 CPU cores.
    "cpu-small": dict(codec=_kl(4, (32, 64, 64), 4), hidden=192, heads=3, scene_depth=4, gen_depth=2,
                      patch=1, adapter_hidden=32, aligned=True),
    # A single modern GPU.
    "gpu-base": dict(codec=_kl(8, (64, 128, 256, 256), 4, 2), hidden=768, heads=12, scene_depth=12,
                     gen_depth=4, patch=2, adapter_hidden=64, aligned=True),
    # MetaEarth-MM as published: 20 scene + 4 generator blocks, hidden 1024, patch 2, ~600M parameters.
    "paper": dict(codec=_kl(8, (128, 256, 512, 512), 4, 2), hidden=1024, heads=16, scene_depth=20,
                  gen_depth=4, patch=2, adapter_hidden=128, aligned=True),
}


def model_config(preset: str, modalities: tuple[str, ...], bands: dict[str, int], **overrides: Any) -> ModelConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; expected one of {', '.join(PRESETS)}")
    base = ModelConfig(preset=preset, modalities=tuple(modalities), bands=dict(bands), **PRESETS[preset])
    return replace(base, **overrides) if overrides else base

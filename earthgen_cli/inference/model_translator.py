"""The unified model behind the Translator protocol: raw source tiles in, raw target tiles out.

Normalisation comes from the checkpoint (dataset-level scaling copied at training time), noise from
`NoiseField` keyed by tile origin and seed, so the same seed gives the same tile whatever the tile
order or grouping; every forward pass holds `batch_size` tiles, so for one batch size that holds
bit for bit, and another batch size changes only float rounding. Loads a checkpoint from
config.json + ema.safetensors only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from earthgen_cli.errors import EarthgenError, EarthgenWarning
from earthgen_cli.flow.choices import DEFAULT_STEPS, Sampler
from earthgen_cli.flow.generate import Estimate, SamplingOptions, generate_latents, translate_latents
from earthgen_cli.inference.noise import NoiseField, NoiseKind, noise_salt
from earthgen_cli.inference.runtime import ModelRuntime, load_runtime, pad_batch, resolve_batch_size
from earthgen_cli.inference.translator import TileBatch
from earthgen_cli.modalities import get_modality


class ModelTranslator:
    name = "earthgen"
    bandwise = False

    def __init__(self, runtime: ModelRuntime, steps: int = DEFAULT_STEPS, sampler: str | Sampler = Sampler.euler,
                 guidance: float = 1.0, shift: float | None = None, batch_size: int | None = None,
                 estimate: str | Estimate = Estimate.sample) -> None:
        self.runtime = runtime  # shared, read-only: several translators (sampling settings) may run on one
        self.model, self.info, self.cfg = runtime.model, runtime.info, runtime.cfg
        self.path, self.device, self.autocast = runtime.path, runtime.device, runtime.autocast
        try:
            self.opts = SamplingOptions(steps=steps, sampler=Sampler(sampler), guidance=guidance, shift=shift,
                                        estimate=Estimate(estimate))
        except ValueError as exc:
            raise EarthgenError(f"{self.path}: bad sampling option ({exc})") from None
        self.tile_multiple = self.cfg.tile_multiple
        self.batch_size = resolve_batch_size(batch_size, self.device)  # every forward pass: pad_batch
        self.warn_unvalidated = runtime.is_default  # say so once when a direction is not validated

    @classmethod
    def load(cls, spec: str | Path | None, device: str = "auto", precision: str = "auto",
             **options) -> "ModelTranslator":
        """`--model` (runtime.load_runtime); options: steps, sampler, guidance, shift, batch_size,
        estimate (see __init__)."""
        return cls(load_runtime(spec, device, precision), **options)

    def check(self, sources: Sequence[str], target: str) -> None:
        known = self.cfg.modalities
        for m in [*sources, target]:
            get_modality(m)
            if m not in known:
                raise EarthgenError(f"{self.path}: the checkpoint never saw modality {m}; "
                                    f"it knows {', '.join(known)}")
        if target in sources:
            raise EarthgenError(f"{self.path}: target {target} is also a source")
        if not sources:
            raise EarthgenError(f"{self.path}: translation needs at least one source")
        if self.warn_unvalidated:
            from earthgen_cli.inference.default_model import unvalidated_warning

            self.warn_unvalidated = False
            warning = unvalidated_warning(list(sources), target)
            if warning:
                warnings.warn(warning, EarthgenWarning, stacklevel=2)

    @property
    def native_tile(self) -> int | None:
        return self.runtime.native_tile

    @property
    def has_confidence(self) -> bool:
        return bool(self.cfg.confidence)

    def output_bands(self, target: str, source_bands: Mapping[str, int]) -> int:
        return self.cfg.bands[target]

    def output_dtype(self, target: str, source_dtypes: Mapping[str, str]) -> str:
        return get_modality(target).dtype

    def describe(self) -> dict[str, str]:
        o = self.opts
        return {"EARTHGEN_MODEL": self.runtime.label, "EARTHGEN_PRESET": self.cfg.preset,
                "EARTHGEN_STEPS": str(o.steps), "EARTHGEN_SAMPLER": o.sampler.value,
                "EARTHGEN_GUIDANCE": str(o.guidance), "EARTHGEN_ESTIMATE": o.estimate.value,
                "EARTHGEN_CHECKPOINT_STEP": str(self.info.step)}

    def translate(self, batch: TileBatch, target: str) -> np.ndarray:
        return self.translate_with_confidence(batch, target)[0]

    def translate_with_confidence(self, batch: TileBatch, target: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Target (B, C, H, W) in raw units, and confidence (B, 1, H, W) in (0, 1] (1 / (1 + sigma),
        sigma the predicted latent error std of the last step) or None without a confidence head."""
        self.check(list(batch.sources), target)
        n, mb = batch.size, self.batch_size
        outs, confs = [], []
        for lo in range(0, n, mb):
            idx = pad_batch(range(lo, min(lo + mb, n)), mb)
            part = TileBatch({m: v[idx] for m, v in batch.sources.items()}, batch.valid[idx],
                             tuple(batch.origins[i] for i in idx), batch.gsd, batch.seed, batch.extra)
            out, conf = self._translate(part, target)
            keep = min(mb, n - lo)
            outs.append(out[:keep])
            confs.append(None if conf is None else conf[:keep])
        return np.concatenate(outs), (None if confs[0] is None else np.concatenate(confs))

    @torch.inference_mode()
    def _translate(self, batch: TileBatch, target: str) -> tuple[np.ndarray, np.ndarray | None]:
        f = self.cfg.codec.factor
        valid = torch.from_numpy(np.ascontiguousarray(batch.valid)).to(self.device)
        latents = {}
        for m, raw in batch.sources.items():
            if raw.shape[1] != self.cfg.bands[m]:
                raise EarthgenError(f"{self.path}: source {m} has {raw.shape[1]} bands, "
                                    f"the checkpoint expects {self.cfg.bands[m]}")
            h, w = raw.shape[-2:]
            if h % self.tile_multiple or w % self.tile_multiple:
                raise EarthgenError(f"tile {h}x{w} is not a multiple of {self.tile_multiple} for {self.path}")
            x = self.info.scaling[m].to_model(torch.from_numpy(np.asarray(raw, dtype=np.float32)).to(self.device))
            x = torch.where(valid[:, None], x, torch.zeros((), device=self.device))  # nodata -> 0, as in training
            latents[m] = self.model.codec(m).encode(x)
        b, (hl, wl) = batch.size, next(iter(latents.values())).shape[-2:]
        noise = lambda ch, salt: NoiseField(batch.seed, ch, salt).batch(batch.origins, hl, wl, scale=f).to(self.device)
        init = noise(self.cfg.latent_channels(target), noise_salt(NoiseKind.TILE_INIT))
        uncond = {m: noise(z.shape[1], noise_salt(NoiseKind.UNCOND, i)) for i, (m, z) in enumerate(latents.items())}
        step_noise = lambda i: noise(init.shape[1], noise_salt(NoiseKind.STEP, step=i))
        gsd = None if batch.gsd is None else torch.full((b,), float(batch.gsd), device=self.device)
        out = translate_latents(self.model, latents, target, init, self.opts, gsd=gsd, uncond_noise=uncond,
                                step_noise=step_noise, autocast_dtype=self.autocast)
        image = self.model.codec(target).decode(out.latent).float()
        raw = self.info.scaling[target].from_model(image).cpu().numpy()
        conf = None
        if out.logvar is not None:
            sigma = (0.5 * out.logvar.clamp(-10, 10)).exp()
            conf = torch.nn.functional.interpolate(1.0 / (1.0 + sigma), scale_factor=f, mode="nearest")
            conf = conf.cpu().numpy().astype(np.float32)
        return raw.astype(np.float32), conf

    @torch.inference_mode()
    def generate_pair(self, modalities: Sequence[str], origins: Sequence[tuple[int, int]], height: int, width: int,
                      gsd: float | None, seed: int) -> dict[str, np.ndarray]:
        """Joint generation of chips from noise (no source): {modality: raw (B, C, H, W)} for one
        chip per origin, the modalities stepped together. Noise is keyed by origin and modality
        (salt = the modality's index in the request), so a chip does not depend on batching."""
        for m in modalities:
            if m not in self.cfg.modalities:
                raise EarthgenError(f"{self.path}: the checkpoint never saw modality {m}; "
                                    f"it knows {', '.join(self.cfg.modalities)}")
        f = self.cfg.codec.factor
        if height % self.tile_multiple or width % self.tile_multiple:
            raise EarthgenError(f"chip {height}x{width} is not a multiple of {self.tile_multiple} for {self.path}")
        hl, wl = height // f, width // f
        init = {m: NoiseField(seed, self.cfg.latent_channels(m), noise_salt(NoiseKind.TILE_INIT, i))
                .batch(tuple(origins), hl, wl, scale=f).to(self.device) for i, m in enumerate(modalities)}
        step_noise = lambda i: torch.cat([NoiseField(seed, self.cfg.latent_channels(m),
                                                     noise_salt(NoiseKind.STEP, slot=k, step=i))
                                          .batch(tuple(origins), hl, wl, scale=f) for k, m in enumerate(modalities)],
                                         dim=1).to(self.device)
        b = len(origins)
        g = None if gsd is None else torch.full((b,), float(gsd), device=self.device)
        out = generate_latents(self.model, {}, init, self.opts, gsd=g, step_noise=step_noise,
                               autocast_dtype=self.autocast)
        return {m: self.info.scaling[m].from_model(self.model.codec(m).decode(z).float()).cpu().numpy()
                .astype(np.float32) for m, z in out.latents.items()}

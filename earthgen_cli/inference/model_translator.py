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
from earthgen_cli.flow.sampling import Sampler
from earthgen_cli.flow.generate import Estimate, SamplingOptions, generate_latents, translate_latents
from earthgen_cli.inference.noise import NoiseField, NoiseKind, noise_salt
from earthgen_cli.inference.translator import TileBatch
from earthgen_cli.modalities import get_modality

# Tiles per forward pass when --batch-size is not given: small on a CPU (a batch costs its full
# compute even when the last group is padded), larger on a GPU, which is idle below ~16 tiles.
DEFAULT_BATCH = {"cpu": 4, "cuda": 16}


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise EarthgenError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EarthgenError(f"device {device} requested but CUDA is not available")
    return dev


COMPILE_ENV = "EARTHGEN_COMPILE"


def inference_runtime(model: torch.nn.Module, device: str, precision: str, where: str):
    """The one device / precision choice of every inference path (translate, joint, inpaint, extend,
    evaluate): (model on the device, device, autocast dtype or None). fp32 on CPU (bit-reproducible;
    bf16 has no fast CPU kernels here), bf16 autocast on CUDA. EARTHGEN_COMPILE=1 wraps the network
    in torch.compile where it compiles (CUDA with a working toolchain); a failure falls back to eager
    with a warning, and results then match eager up to float rounding."""
    import os

    dev = pick_device(device)
    if precision not in ("auto", "fp32", "bf16"):
        raise EarthgenError(f"{where}: precision must be auto, fp32 or bf16, not {precision!r}")
    bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    model = model.to(dev)
    if os.environ.get(COMPILE_ENV, "") == "1":
        try:
            model.scene = torch.compile(model.scene)  # the transformers: where the FLOPs are
            model.generator = torch.compile(model.generator)
        except Exception as exc:  # noqa: BLE001  (no compiler toolchain, unsupported op, ...)
            warnings.warn(f"{COMPILE_ENV}=1 but torch.compile failed ({type(exc).__name__}); running eager",
                          EarthgenWarning, stacklevel=2)
    return model, dev, (torch.bfloat16 if bf16 else None)


def resolve_batch_size(batch_size: int | None, device: torch.device) -> int:
    """--batch-size as given, else the device's default (DEFAULT_BATCH); refuses < 1."""
    if batch_size is None:
        return DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])
    if batch_size < 1:
        raise EarthgenError(f"--batch-size must be at least 1, got {batch_size}")
    return batch_size


def checkpoint_label(path: str | Path) -> str:
    """EARTHGEN_MODEL of a checkpoint: `default@<sha256>` for the model shipped in the package,
    else `<folder name>@<sha256>`; never an install path (io.identity)."""
    from earthgen_cli.inference.default_model import default_model_dir
    from earthgen_cli.io.identity import model_label

    default = Path(path).resolve() == default_model_dir().resolve()
    return model_label(str(path), "default" if default else None)


class ModelTranslator:
    name = "earthgen"

    def __init__(self, model, info, path: str | Path, device: str = "auto", steps: int = 8,
                 sampler: str | Sampler = Sampler.euler, guidance: float = 1.0, shift: float | None = None,
                 precision: str = "auto", batch_size: int | None = None,
                 estimate: str | Estimate = Estimate.sample) -> None:
        self.path = str(path)
        self.info = info
        self.cfg = info.model
        self.model, self.device, self.autocast = inference_runtime(model, device, precision, str(path))
        try:
            self.opts = SamplingOptions(steps=steps, sampler=Sampler(sampler), guidance=guidance, shift=shift,
                                        estimate=Estimate(estimate))
        except ValueError as exc:
            raise EarthgenError(f"{self.path}: bad sampling option ({exc})") from None
        self.tile_multiple = self.cfg.tile_multiple
        # Every forward pass sees exactly `batch_size` tiles (the last group padded): BLAS kernels
        # pick their blocking from the matrix shapes, so a fixed shape is what makes a tile's result
        # bit-identical for one --batch-size, however the caller groups its tiles. Another batch
        # size changes only float rounding (README, "--batch-size").
        self.batch_size = resolve_batch_size(batch_size, self.device)
        self.warn_unvalidated = False  # the default model: say so once when a direction is not validated
        self._label: str | None = None

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", **options) -> "ModelTranslator":
        """options: steps, sampler, guidance, shift, precision, batch_size, estimate (see __init__)."""
        from earthgen_cli.checkpoint import load_model

        model, info = load_model(Path(path), ema=True)
        return cls(model, info, path, device=device, **options)

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
        """The crop side the model was trained on (a multiple of the tile multiple), if any:
        the tile size its positions and token counts were learned at."""
        from earthgen_cli.checkpoint import native_tile

        return native_tile(self.info)

    def output_bands(self, target: str, source_bands: Mapping[str, int]) -> int:
        return self.cfg.bands[target]

    def output_dtype(self, target: str, source_dtypes: Mapping[str, str]) -> str:
        return get_modality(target).dtype

    def describe(self) -> dict[str, str]:
        o = self.opts
        if self._label is None:
            self._label = checkpoint_label(self.path)
        return {"EARTHGEN_MODEL": self._label, "EARTHGEN_PRESET": self.cfg.preset,
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
            idx = [min(i, n - 1) for i in range(lo, lo + mb)]  # pad by repeating the last tile
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

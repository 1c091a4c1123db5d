"""Whole-scene sampling with the unified model, MultiDiffusion-style (DESIGN.md "Whole-scene inference").

Every sampling step runs each overlapping tile's latents through the model, takes one sampler step
per tile, and blends the stepped tiles back into the scene canvas with weights that sum to one:
the next step starts from the averaged latent, so neighbouring tiles agree on their overlap at
every noise level instead of only in their final pixels. Generated slots start from position-keyed
noise, condition slots are clean latents (t=0) encoded once. For inpainting and outpainting a known
region is re-imposed after every step on the flow path of its own noise,
x_t = (1 - t) x0 + t eps, so the generated part is continuously steered by the known part.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.flow.sampling import get_schedule, shift_for_tokens, step
from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout, WindowReader, read_padded, zero
from earthgen_cli.flow.generate import SamplingOptions, slot_velocity
from earthgen_cli.inference.noise import NoiseField, NoiseKind, noise_salt
from earthgen_cli.inference.runtime import ModelRuntime, pad_batch
from earthgen_cli.modalities import MODALITY_NAMES


# Scene sampling runs on the one model runtime (runtime.py): `load_runtime` loads it.


def modality_salt(modality: str) -> int:
    """Initial-noise salt of a generated slot: fixed per modality, so a modality's noise does not
    depend on the order of --pair."""
    return noise_salt(NoiseKind.SCENE_INIT, MODALITY_NAMES.index(modality))


def noise_canvas(canvas: MemmapCanvas, name: str, seed: int, salt: int, channels: int,
                 shape: tuple[int, int], rows: int = 64) -> np.memmap:
    arr = canvas.array(name, (channels, *shape))
    field = NoiseField(seed, channels, salt)
    for r in range(0, shape[0], rows):
        h = min(rows, shape[0] - r)
        arr[:, r : r + h] = field.crop(r, 0, h, shape[1]).numpy()
    return arr


@torch.inference_mode()
def encode_canvas(sm: ModelRuntime, layout: SceneLayout, modality: str, read: WindowReader,
                  canvas: MemmapCanvas, name: str) -> tuple[np.memmap, np.memmap]:
    """The clean latent of a raster read window by window (raw units), blended over the tiles, and
    the (h, w) latent-cell validity: 1 where every pixel of the cell was valid."""
    f, bands = sm.cfg.codec.factor, sm.cfg.bands[modality]
    codec, scaling = sm.model.codec(modality), sm.info.scaling[modality]
    lat = canvas.array(name, (sm.cfg.latent_channels(modality), *layout.latent_shape))
    keep = canvas.array(name + "_keep", layout.latent_shape)
    th, tw = layout.tile_px
    for tile in layout.tiles():
        raw, valid = read_padded(read, bands, tile.y, tile.x, th, tw, layout.height, layout.width)
        x = scaling.to_model(torch.from_numpy(raw).to(sm.device))
        v = torch.from_numpy(valid).to(sm.device)
        x = torch.where(v[None], x, torch.zeros((), device=sm.device))[None]  # nodata -> 0, as in training
        z = codec.encode(x).float()[0].cpu().numpy()
        cell = -torch.nn.functional.max_pool2d(-v[None, None].float(), f)[0, 0].cpu().numpy()
        ly, lx, (lh, lw) = tile.y // f, tile.x // f, z.shape[-2:]
        lat[:, ly : ly + lh, lx : lx + lw] += z * tile.weight_lat
        keep[ly : ly + lh, lx : lx + lw] += cell * tile.weight_lat
    keep[:] = (np.asarray(keep) > 1.0 - 1e-6).astype(np.float32)  # blended validities: 1 only if every tile says 1
    return lat, keep


@dataclass(frozen=True)
class Known:
    """A region whose latents are known (inpainting, outpainting): re-imposed after every step."""

    latents: Mapping[str, np.memmap]  # generated modality -> clean latent (C, h, w)
    keep: np.ndarray  # (h, w) float32, 1 where the latent cell is known


def whole_tokens(keep: np.ndarray, patch: int) -> np.ndarray:
    """(h, w) latent-cell map (> 0 = known) -> (h, w) float32, 1 on the cells of tokens whose
    every cell is known (a model.token_times checkpoint gets those clean at t=0; a partly known
    token is generated)."""
    h, w = keep.shape
    tok = (np.asarray(keep) > 0).reshape(h // patch, patch, w // patch, patch).all(axis=(1, 3))
    return np.repeat(np.repeat(tok, patch, 0), patch, 1).astype(np.float32)


def scene_fill(latent: np.ndarray, keep: np.ndarray, side: int = 512, rows: int = 64) -> tuple[torch.Tensor, int]:
    """The harmonic fill of a whole latent canvas (C, h, w) from its cells where `keep` (h, w) > 0,
    at 1/s of its resolution with s the smallest factor that brings both sides to <= `side` cells:
    (1, C, h/s, w/s) and s. Read in blocks of `rows` x s rows, so memory stays bounded at any scene
    size. Each tile of a context-fill model's inpainting holds its fill to this on its border."""
    from earthgen_cli.models.earthgen import harmonic_fill

    c, h, w = latent.shape
    s = max(1, math.ceil(max(h, w) / side))
    hc, wc = -(-h // s), -(-w // s)
    sums = np.zeros((c, hc, wc), np.float32)
    count = np.zeros((hc, wc), np.float32)
    for r in range(0, h, rows * s):
        k = (np.asarray(keep[r : r + rows * s]) > 0).astype(np.float32)
        pad = ((0, (-k.shape[0]) % s), (0, wc * s - w))
        k = np.pad(k, pad)
        blk = np.pad(np.asarray(latent[:, r : r + rows * s], np.float32), ((0, 0), *pad)) * k
        n = k.shape[0] // s
        sums[:, r // s : r // s + n] += blk.reshape(c, n, s, wc, s).sum((2, 4))
        count[r // s : r // s + n] += k.reshape(n, s, wc, s).sum((1, 3))
    mean = torch.from_numpy(sums / np.maximum(count, 1.0))[None]
    return harmonic_fill(mean, torch.from_numpy(count > 0).float()[None, None]), s


def edge_crop(fill: torch.Tensor, s: int, y: int, x: int, th: int, tw: int) -> torch.Tensor:
    """(C, th, tw): the window at latent cell (y, x) of a `scene_fill` result, bilinear at full
    resolution when it was solved at 1/s."""
    if s == 1:
        return fill[0, :, y : y + th, x : x + tw]
    hc, wc = fill.shape[-2:]
    y0, x0 = max(y // s - 1, 0), max(x // s - 1, 0)
    y1, x1 = min(-(-(y + th) // s) + 1, hc), min(-(-(x + tw) // s) + 1, wc)
    up = torch.nn.functional.interpolate(fill[:, :, y0:y1, x0:x1], scale_factor=s, mode="bilinear", align_corners=False)[0]
    return up[:, y - y0 * s : y - y0 * s + th, x - x0 * s : x - x0 * s + tw]


def repaint_passes(steps: int, resample: int) -> list[tuple[int, int]]:
    """(step, repeat) in sampling order. RePaint (Lugmayr et al. 2022): with a known region each
    step but the last (which ends at t=0) is taken `resample` times, going back from t_next to t
    with fresh noise in between, so the generated part can agree with the known part it was given;
    resample 1 = plain steps (the known part is only re-imposed)."""
    return [(i, u) for i in range(steps) for u in range(resample if i < steps - 1 else 1)]


def _impose(x: np.memmap, known: np.ndarray, eps: np.ndarray, keep: np.ndarray, t: float, rows: int = 128) -> None:
    for r in range(0, x.shape[1], rows):
        k = keep[r : r + rows] > 0
        on_path = (1.0 - t) * known[:, r : r + rows] + t * eps[:, r : r + rows]
        x[:, r : r + rows] = np.where(k[None], on_path, x[:, r : r + rows])


def _renoise(x: np.memmap, s: float, t: float, field: NoiseField, rows: int = 64) -> None:
    """x_s on the path x_t = (1 - t) x0 + t eps, taken forward to the later time t > s in place:
    a x_s + sigma z with a = (1 - t) / (1 - s), sigma^2 = t^2 - a^2 s^2 (the same x0, and noise of
    total standard deviation t)."""
    a = (1.0 - t) / (1.0 - s)
    sigma = math.sqrt(max(t * t - a * a * s * s, 0.0))
    for r in range(0, x.shape[1], rows):
        h = min(rows, x.shape[1] - r)
        x[:, r : r + h] = a * x[:, r : r + h] + sigma * field.crop(r, 0, h, x.shape[2]).numpy()


def _crops(arrays: Sequence[np.ndarray], tiles, th: int, tw: int, f: int, device) -> list[torch.Tensor]:
    return [torch.from_numpy(np.stack([np.asarray(a[:, t.y // f : t.y // f + th, t.x // f : t.x // f + tw])
                                       for t in tiles])).to(device) for a in arrays]


@torch.inference_mode()
def sample_scene(sm: ModelRuntime, layout: SceneLayout, init: Mapping[str, np.memmap],
                 conditions: Mapping[str, np.memmap], opts: SamplingOptions, seed: int, gsd: float | None,
                 batch_size: int, canvas: MemmapCanvas, known: Known | None = None,
                 progress=None, text: np.ndarray | None = None) -> dict[str, np.memmap]:
    """Integrate the generated slots (`init`: noise canvases, left untouched) from t=1 to t=0 as one
    scene; returns the clean latent canvases (after each modality's residual adapter)."""
    model, cfg, dev, f = sm.model, sm.cfg, sm.device, sm.cfg.codec.factor
    gen, cond = list(init), list(conditions)
    chans = [cfg.latent_channels(m) for m in gen]
    th, tw = layout.tile_lat
    shift = opts.shift if opts.shift is not None else shift_for_tokens(th * tw // cfg.patch**2)
    schedule = get_schedule(opts.steps, shift)
    cur = {m: canvas.array(f"{m}_x_a", init[m].shape) for m in gen}
    nxt = {m: canvas.array(f"{m}_x_b", init[m].shape) for m in gen}
    for m in gen:
        cur[m][:] = init[m]
    # A model trained with per-token times (model.token_times) sees the known tokens clean at t=0
    # at every step; others get them on their noise path, re-imposed after each step.
    clean = whole_tokens(known.keep, cfg.patch) if known is not None and cfg.token_times else None
    # A context-fill model's tiles hold their fill to the whole scene's on their borders (else
    # each tile reflects at its own edges and a hole wider than half a tile shows their seams).
    edges = ({m: scene_fill(known.latents[m], clean) for m in gen}
             if clean is not None and cfg.context_fill else None)

    def impose(x: np.memmap, m: str, t_now: float) -> None:
        _impose(x, known.latents[m], init[m], known.keep, t_now)
        if clean is not None:
            _impose(x, known.latents[m], init[m], clean, 0.0)

    if known is not None:
        for m in gen:
            impose(cur[m], m, schedule[0])
    total_c = sum(chans)
    for i, u in repaint_passes(opts.steps, opts.resample if known is not None else 1):
        t, t_next = schedule[i], schedule[i + 1]
        if u > 0:  # RePaint: back from t_next to t, then the same step again
            for k, m in enumerate(gen):
                field = NoiseField(seed, chans[k], noise_salt(NoiseKind.RESAMPLE, slot=k, step=i, repeat=u))
                _renoise(cur[m], t_next, t, field)
                impose(cur[m], m, t)
        for m in gen:
            zero(nxt[m])
        for tiles in layout.batches(batch_size):
            n = len(tiles)
            # A fixed batch shape (last tile repeated) keeps results bit-identical across batch sizes.
            padded = pad_batch(tiles, batch_size)
            origins = [t_.origin for t_ in padded]
            x = torch.cat(_crops([cur[m] for m in gen], padded, th, tw, f, dev), dim=1)
            c_lat = _crops([conditions[m] for m in cond], padded, th, tw, f, dev)
            b = x.shape[0]
            g = None if gsd is None else torch.full((b,), float(gsd), device=dev)
            txt = None if text is None else torch.from_numpy(text).to(dev)[None].expand(b, -1)
            uncond = [NoiseField(seed, z.shape[1], noise_salt(NoiseKind.UNCOND, MODALITY_NAMES.index(m)))
                      .batch(origins, th, tw, scale=f).to(dev) for z, m in zip(c_lat, cond)]

            tok = None
            if clean is not None:
                p = cfg.patch
                tok = torch.from_numpy(np.stack([clean[t_.y // f : t_.y // f + th : p, t_.x // f : t_.x // f + tw : p]
                                                 for t_ in padded]) > 0).to(dev)
            ring = None if edges is None else [
                torch.stack([edge_crop(*edges[m], t_.y // f, t_.x // f, th, tw) for t_ in padded]).to(dev) for m in gen]
            velocity = slot_velocity(model, gen, chans, dict(zip(cond, c_lat)), opts.guidance, g,
                                     dict(zip(cond, uncond)), sm.autocast, text=txt, known=tok, edges=ring)
            noise = None
            if t_next > 0:
                noise = NoiseField(seed, total_c, noise_salt(NoiseKind.STEP, step=i)).batch(origins, th, tw, scale=f)
            x_next = step(opts.sampler, velocity, x, t, t_next, noise, opts.eta).cpu().numpy()
            for j, tile in enumerate(tiles):
                ly, lx = tile.y // f, tile.x // f
                parts = np.split(x_next[j], np.cumsum(chans)[:-1], axis=0)
                for m, part in zip(gen, parts):
                    nxt[m][:, ly : ly + th, lx : lx + tw] += part * tile.weight_lat
            if progress is not None:
                progress.update(n)
        if known is not None:
            for m in gen:
                impose(nxt[m], m, t_next)
        cur, nxt = nxt, cur
    return cur


@torch.inference_mode()
def decode_canvas(sm: ModelRuntime, layout: SceneLayout, modality: str, latent: np.ndarray,
                  canvas: MemmapCanvas, batch_size: int, fill: bool = False) -> np.memmap:
    """Adapter (`EarthGenModel.adapt_fill` for an inpainting or outpainting `fill`) + codec decoder
    + de-normalisation, tile by tile, blended in pixel space: (C, hp, wp) float32 raw values of the
    padded scene."""
    f, cfg = sm.cfg.codec.factor, sm.cfg
    out = canvas.array(f"{modality}_pixels", (cfg.bands[modality], layout.hp, layout.wp))
    th, tw = layout.tile_lat
    scaling = sm.info.scaling[modality]
    for tiles in layout.batches(batch_size):
        padded = pad_batch(tiles, batch_size)
        z = _crops([latent], padded, th, tw, f, sm.device)[0]
        with torch.autocast(sm.device.type, dtype=sm.autocast, enabled=sm.autocast is not None):
            adapt = sm.model.adapt_fill if fill else sm.model.adapt
            img = sm.model.codec(modality).decode(adapt(modality, z).float())
        raw = scaling.from_model(img.float()).cpu().numpy()
        for j, tile in enumerate(tiles):
            h, w = raw.shape[-2:]
            out[:, tile.y : tile.y + h, tile.x : tile.x + w] += raw[j] * tile.weight_px
    return out


def fill_steps(steps: int | None, cfg) -> int:
    """inpaint/extend's sampling steps: as given, else 1 for a model.context_fill checkpoint (its
    one-call fill beats its 8-step sample on every inpainting benchmark: RMSE 48.8 against 64.3
    on held-out chips, 144 against 334 out of region; MODEL_CARD.md), else the default."""
    from earthgen_cli.flow.choices import DEFAULT_STEPS

    return steps if steps is not None else (1 if cfg.context_fill else DEFAULT_STEPS)


FILLS = ("blend", "coherence", "harmonic")  # inpaint/extend --fill, the default first


@contextlib.contextmanager
def fill_method(model: torch.nn.Module, method: str | None, what: str = "the model") -> Iterator[None]:
    """For the duration of an inpaint or extend run, the classical fill a model.context_fill
    checkpoint's context path starts from (models/earthgen.py `guided_fill`): "coherence" (coherence
    transport, models/coherence.py: edges and lines run on across the hole), "harmonic" (the
    smoothest surface through the surroundings, what the path was trained with) or "blend" (None:
    the default; the mean of the two, lines at about half their contrast, the lowest error on six
    of the seven chip benchmarks and within 0.1 of it on the seventh: MODEL_CARD.md). No parameter depends on which. A model without a context
    fill samples its fills: asking it for one is an error naming `what`."""
    if method is not None and method not in FILLS:
        raise EarthgenError(f"--fill {method}: not one of {', '.join(FILLS)}")
    path = _fill_path(model)
    if path is None:
        if method is not None:
            raise EarthgenError(f"--fill {method}: {what} has no context fill (model.context_fill); "
                                f"its fills are sampled, leave --fill out")
        yield
        return
    before, path.fill_method = path.fill_method, method or FILLS[0]
    try:
        yield
    finally:
        path.fill_method = before


def current_fill(model: torch.nn.Module) -> str | None:
    """The fill a context-fill model's path starts from now (EARTHGEN_FILL of inpaint and extend
    outputs); None for a model without one."""
    path = _fill_path(model)
    return None if path is None else path.fill_method


def _fill_path(model: torch.nn.Module):
    """The context path of a model.context_fill checkpoint (what reads the fill), else None."""
    return model.generator.context if model.cfg.context_fill else None


def sampling_options(steps: int, sampler: str, guidance: float, resample: int = 1) -> SamplingOptions:
    from earthgen_cli.flow.sampling import Sampler

    try:
        return SamplingOptions(steps=steps, sampler=Sampler(sampler), guidance=guidance, resample=resample)
    except ValueError as exc:
        raise EarthgenError(f"bad sampling option: {exc}") from None

"""The unified model: per-modality codecs, scene inference transformer, modality-routed generator,
residual adapters, confidence head and global conditions (MetaEarth-MM section III with Any2Any's
adapters, C-DiffSET's confidence and Text2Earth's resolution condition).

The network only predicts: `forward` takes the noisy latents of K slots (one modality each, shared by
the whole batch) with a time per slot, or per token of each slot (masked-slot inpainting: the known
tokens clean at t=0 beside noisy ones, `model.token_times`), and returns, per slot, the prediction
target (velocity or x0) and a log-variance map, plus the scene tokens the consistency loss works on. Paths, losses and
samplers are in `earthgen_cli.flow`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from earthgen_cli.models.blocks import (Block, FinalLayer, ScalarEmbedder, patchify_embed, pos_embed_2d,
                                        unpatchify)
from earthgen_cli.models.codecs import Codec, build_codec
from earthgen_cli.models.coherence import coherence_fill
from earthgen_cli.models.config import CodecKind, ModelConfig


@dataclass
class ModelOutput:
    pred: list[torch.Tensor]  # per slot (B, C_k, h, w): velocity or x0, as the config says
    logvar: list[torch.Tensor] | None  # per slot (B, 1, h, w) when the confidence head is on
    scene: torch.Tensor  # (B, K, N, D) scene tokens


def _ada(hidden: int) -> nn.Sequential:
    layer = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
    nn.init.zeros_(layer[1].weight)  # adaLN-Zero: every block starts as the identity
    nn.init.zeros_(layer[1].bias)
    return layer


def cell_time(t: torch.Tensor, j: int, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Slot j's time for a map of `size`: (B, 1, 1, 1) from per-slot times t (B, K), or (B, 1, H, W)
    from per-token times t (B, K, hp, wp), each token's time spread over its cells (nearest)."""
    tj = t[:, j]
    if tj.dim() == 1:
        return tj[:, None, None, None]
    tj = tj[:, None]
    return tj if tuple(tj.shape[-2:]) == tuple(size) else F.interpolate(tj, size=tuple(size), mode="nearest")


class GlobalConditions(nn.Module):
    """GSD (m/px) and an optional text vector -> one (B, D) vector; a dropped condition is replaced
    by a learned null embedding, which is what classifier-free guidance compares against. So is an
    unknown one: a non-finite GSD (a plain image) or a text row with a NaN (a chip without caption),
    per sample, so that a missing GSD does not take the caption with it or the other way round."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.gsd = ScalarEmbedder(d, multiplier=100.0) if cfg.gsd else None  # on log(gsd)
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.SiLU(), nn.Linear(d, d)) if cfg.text_dim else None
        self.null_gsd = nn.Parameter(torch.zeros(d)) if cfg.gsd else None
        self.null_text = nn.Parameter(torch.zeros(d)) if cfg.text_dim else None

    def forward(self, batch: int, gsd: torch.Tensor | None, text: torch.Tensor | None,
                drop: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(batch, ref.shape[-1], dtype=ref.dtype, device=ref.device)
        keep = None if drop is None else (~drop.to(ref.device))[:, None]
        for emb, null, value in ((self.gsd, self.null_gsd, gsd), (self.text, self.null_text, text)):
            if emb is None:
                continue
            if value is None:  # unknown (e.g. a raster without a transform): the null embedding
                out = out + null.to(ref.dtype)
                continue
            value = value.float()
            known = torch.isfinite(value.reshape(batch, -1)).all(1)[:, None]  # (B, 1)
            # unknown values never reach the embedding: NaN inputs would poison its gradients
            value = torch.where(known if value.dim() > 1 else known[:, 0], value, torch.ones_like(value))
            v = emb(torch.log(value.clamp_min(1e-3)) if emb is self.gsd else value.to(ref.dtype))
            use = known if keep is None else keep & known
            out = out + torch.where(use, v.to(ref.dtype), null.to(ref.dtype))
        return out


class SceneEncoder(nn.Module):
    """Full attention over the tokens of all slots; partition AdaLN from each slot's (time, modality)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, p = cfg.hidden, cfg.patch
        self.patch = nn.ModuleDict({m: nn.Conv2d(cfg.latent_channels(m), d, p, p) for m in cfg.modalities})
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.scene_depth))
        self.ada = nn.ModuleList(_ada(d) for _ in range(cfg.scene_depth))
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.out = nn.Linear(d, d)

    def forward(self, latents: Sequence[torch.Tensor], mods: Sequence[str], slot_emb: torch.Tensor,
                pos: torch.Tensor) -> torch.Tensor:
        """slot_emb: (B, K, D) per slot, or (B, K, N, D) per token (per-token times)."""
        b, k = slot_emb.shape[:2]
        h = torch.cat([patchify_embed(self.patch[m], z) for z, m in zip(latents, mods)], dim=1)  # (B, K*N, D)
        n = h.shape[1] // k
        per_token = slot_emb.dim() == 4
        cond = slot_emb.reshape(b, k * n, -1) if per_token else slot_emb
        h = h + pos.repeat(k, 1)[None].to(h.dtype) + (cond if per_token else cond.repeat_interleave(n, dim=1))  # eq. 12
        for block, ada in zip(self.blocks, self.ada):
            # (B, K*N, 6D): partition AdaLN (eq. 13-14), computed per token when the times are
            mod = ada(cond) if per_token else ada(cond).repeat_interleave(n, dim=1)
            h = block(h, mod)
        return self.out(self.norm(h)).reshape(b, k, n, -1)  # (B, K, N, D)


# The direct source-to-target parts (model.aligned_skip, model.pixel_path): parameter-name prefix
# per config field. flow.init_from may grow them on a model without; optim.direct_lr_mult sets their rate.
DIRECT_PARTS = {"aligned_skip": "generator.skip.", "pixel_path": "generator.pixel.",
                "context_path": "generator.context."}


def skip_key(source: str, target: str) -> str:
    return f"{source}_to_{target}"


class PixelPath(nn.Module):
    """The pixel path: each source slot's latent back at its own resolution (the pixel codec's
    space-to-depth undone; a learnt codec's latent grid as it is), a per-modality 3x3 stem, a shared
    trunk of 3x3 convolutions dilated 1, 2, 4 (31 px of context), and a per-modality 1x1 head to the
    target, zero-initialised. What it adds to a slot's prediction is the mean over the other slots,
    each weighted by (1 - its time) like the aligned path, so a dropped source adds exactly nothing.
    Why: the transformer sees 4x4-pixel tokens, and its per-token output heads left translations
    blocky; a per-pixel map with local context is what pix2pix-style regressions get right."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.pixel_path
        self.r = cfg.codec.factor if cfg.codec.kind is CodecKind.pixel else 1
        self.pairs = cfg.pixel_pairs
        self.sees_pred = cfg.pixel_sees_pred  # model.pixel_sees_pred: the stem reads the target's prediction too
        ch = {m: cfg.latent_channels(m) // self.r**2 for m in cfg.modalities}
        # model.pixel_norm: centred pre-activations, so the trunk cannot fall where SiLU is flat
        norm = (lambda: [nn.GroupNorm(math.gcd(8, w), w)]) if cfg.pixel_norm else list

        def trunk() -> nn.Sequential:
            return nn.Sequential(*(layer for d in (1, 2, 4) for layer in
                                   (*norm(), nn.SiLU(), nn.Conv2d(w, w, 3, padding=d, dilation=d))),
                                 *norm(), nn.SiLU())

        if self.pairs:  # model.pixel_pairs: stem, trunk and head of their own per (source, target)
            pairs = [(a, b) for a in cfg.modalities for b in cfg.modalities if a != b]
            self.stem = nn.ModuleDict({skip_key(a, b): nn.Conv2d(ch[a] + (ch[b] if self.sees_pred else 0), w, 3,
                                                                 padding=1) for a, b in pairs})
            self.trunk = nn.ModuleDict({skip_key(a, b): trunk() for a, b in pairs})
            heads = {skip_key(a, b): ch[b] for a, b in pairs}
        else:
            self.stem = nn.ModuleDict({m: nn.Conv2d(ch[m], w, 3, padding=1) for m in cfg.modalities})
            self.trunk = trunk()
            heads = ch
        # no bias: a dropped source (all features gated to zero) must add exactly nothing
        self.head = nn.ModuleDict({k: nn.Conv2d(w, c, 1, bias=False) for k, c in heads.items()})
        for conv in self.head.values():
            nn.init.zeros_(conv.weight)

    def features(self, latents: Sequence[torch.Tensor], mods: Sequence[str],
                 t: torch.Tensor) -> list:
        """Per slot: its gated features (B, W, H, W) at pixel resolution (with model.pixel_pairs:
        its pixels and gate, the features depending on the target); None for a slot whose gate is
        zero for every sample (pure noise: a translation's target), not computed. The gate is
        1 - time, per slot or (per-token times) per pixel."""
        out: list = []
        for j, (z, m) in enumerate(zip(latents, mods)):
            gate = (1.0 - cell_time(t, j, (z.shape[-2] * self.r, z.shape[-1] * self.r))).to(z.dtype)
            if not bool(gate.any()):
                out.append(None)
                continue
            x = F.pixel_shuffle(z, self.r) if self.r > 1 else z
            out.append((x, gate) if self.pairs else self.trunk(self.stem[m](x)) * gate)
        return out

    def to_slot(self, feats: Sequence, mods: Sequence[str], i: int,
                pred: torch.Tensor | None = None) -> torch.Tensor | None:
        """(B, C_i, h, w): slot i's share, in its latent layout; None when it is exactly zero.
        `pred`: slot i's prediction so far (its latent layout), read with model.pixel_sees_pred."""
        present = [(j, f) for j, f in enumerate(feats) if j != i and f is not None]
        if not present:
            return None
        if self.pairs:
            if self.sees_pred:
                p = F.pixel_shuffle(pred, self.r) if self.r > 1 else pred
                present = [(j, (torch.cat([x, p.to(x.dtype)], 1), g)) for j, (x, g) in present]
            keys = [(skip_key(mods[j], mods[i]), f) for j, f in present]
            out = sum(self.head[k](self.trunk[k](self.stem[k](x)) * g) for k, (x, g) in keys) / (len(feats) - 1)
        else:
            out = self.head[mods[i]](sum(f for _, f in present) / (len(feats) - 1))
        return F.pixel_unshuffle(out, self.r) if self.r > 1 else out


@torch.no_grad()
def harmonic_fill(z: torch.Tensor, known: torch.Tensor, iters: int = 24) -> torch.Tensor:
    """(B, C, h, w): z with its unknown cells replaced by the harmonic fill from the known ones
    (known (B, 1, h, w), 1 on known cells): the solution of Laplace's equation with the known cells
    held fixed and reflecting chip edges, the smoothest surface through the surroundings. Solved
    coarse to fine (each level starts from the 2x coarser one's solution, then `iters` Jacobi
    sweeps): a linear surface comes back to 0.1 % of its range across a small hole, 2.5 % across
    one covering 3/4 of the grid (tests/test_models.py); a sample with no known cell gets 0."""
    h, w = z.shape[-2:]
    seen = z * known
    if min(h, w) >= 4:
        cnt = F.avg_pool2d(known, 2, ceil_mode=True)
        coarse = harmonic_fill(F.avg_pool2d(seen, 2, ceil_mode=True) / cnt.clamp_min(1e-6), (cnt > 0).to(z.dtype), iters)
        y = F.interpolate(coarse, scale_factor=2, mode="nearest")[..., :h, :w]
    else:
        y = (seen.sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1.0)).expand_as(z)
    y = torch.where(known > 0, z, y)
    for _ in range(iters):
        p = F.pad(y, (1, 1, 1, 1), mode="replicate")
        mean4 = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4
        y = torch.where(known > 0, z, mean4)
    return y


def classical_fill(z: torch.Tensor, known: torch.Tensor, method: str, shared: bool = False) -> torch.Tensor:
    """`harmonic_fill`, `coherence_fill` (its bands sharing one orientation with `shared`) or
    "blend", the mean of the two, of z's unknown cells."""
    if method == "harmonic":
        return harmonic_fill(z, known)
    carried = coherence_fill(z, known, shared=shared)
    return carried if method == "coherence" else (harmonic_fill(z, known) + carried) / 2


@torch.no_grad()
def guided_fill(z: torch.Tensor, known: torch.Tensor, guide: torch.Tensor | None = None,
                edge: torch.Tensor | None = None, method: str = "harmonic") -> torch.Tensor:
    """(B, C, h, w): the `classical_fill` of z's unknown cells (`method`: harmonic, coherence, which
    carries edges and lines across the hole, or blend), plus, where a guide (B, G, h, w: other
    modalities of the same grid, known everywhere; zeros where there is none) is given, the
    guide's own detail carried in: per sample, a least-squares map from the guide to z fit on the
    known cells (Poisson image editing's way: fill = harmonic fill + map(guide - the guide's
    harmonic fill)), each band's share scaled by the R^2 of that map there, so a guide that does
    not explain the band (SAR for visible bands) adds little. Known cells are z exactly. `edge`
    (B, C, h, w): values for the unknown cells on the grid's outer ring (a tile's border inside a
    hole, from a fill of the whole scene), held fixed like known ones, so that neighbouring tiles
    solve for the same surface instead of each reflecting at its own edge (which showed seams).
    Solved in float32 with autocast off (a CUDA run under bf16 autocast has no half-precision solve)."""
    dtype = z.dtype
    with torch.autocast(z.device.type, enabled=False):
        z, known = z.float(), known.float()
        held, values = known, z
        if edge is not None:
            ring = torch.ones_like(known)
            ring[..., 1:-1, 1:-1] = 0
            ring = ring * (1 - known)
            held, values = known + ring, torch.where(ring > 0, edge.float(), z)
        if guide is None:
            return classical_fill(values, held, method).to(dtype)
        guide = guide.float()
        # one set of coherence weights for the slot and its guide, so the guide's map stays exact
        fill, guide_fill = classical_fill(torch.cat([values, guide], 1), held, method,
                                          shared=True).split([z.shape[1], guide.shape[1]], 1)
        return _add_guide_detail(z, known, guide, fill, guide - guide_fill).to(dtype)


def _add_guide_detail(z: torch.Tensor, known: torch.Tensor, guide: torch.Tensor, fill: torch.Tensor,
                      detail: torch.Tensor) -> torch.Tensor:
    """`guided_fill`'s second half: fill + the R^2-weighted least-squares map of the guide's
    `detail` (guide minus its harmonic fill: 0 on known cells), fit on the known cells."""
    x = torch.cat([torch.ones_like(known), guide], 1).flatten(2)  # (B, 1+G, N)
    y, k = z.flatten(2), known.flatten(2)  # (B, C, N), (B, 1, N)
    n = k.sum(2, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
    gram = (x * k) @ x.transpose(1, 2) / n
    eye = torch.eye(x.shape[1], dtype=z.dtype, device=z.device)
    gram = gram + 1e-6 * gram.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * eye + 1e-12 * eye  # a guide of zeros solves too
    coef = torch.linalg.solve(gram, (x * k) @ y.transpose(1, 2) / n)  # (B, 1+G, C)
    res = (y - coef.transpose(1, 2) @ x) * k
    mean = (y * k).sum(2, keepdim=True) / n
    r2 = (1 - (res**2).sum(2) / (((y - mean) * k) ** 2).sum(2).clamp_min(1e-12)).clamp(0, 1)  # (B, C)
    return fill + r2[..., None, None] * torch.einsum("bgc,bghw->bchw", coef[:, 1:], detail)


class ContextPath(nn.Module):
    """The context path (masked-slot inpainting, model.context_path): per modality, a dilated conv
    net over a slot's latent grid that reads the slot's known cells (its latent where its per-token
    time is 0, that mask, and the known cells' mean broadcast: the level a fill must at least
    match) beside the transformer's prediction and how much the other slots show (their mean
    1 - time: 0 for plain inpainting, 1 beside a clean condition, which informs the prediction),
    and adds a zero-initialised correction to the prediction of the slot's generated cells, scaled
    by their time like the pixel path. Dilations 1, 2, 4, 8 (31 cells of context: 124 px through a x4 codec) reach across a hole
    from both sides. It acts only on a slot with known and generated tokens side by side (per-token
    times), so translation and joint generation are exactly what they were without it. Why: trained
    whole with masked batches (v14 screening, MODEL_CARD.md), the transformer lost 1.5 dB of rgb->nir
    in 200 steps and still filled holes worse than the surroundings' mean."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.context_path
        ch = {m: cfg.latent_channels(m) for m in cfg.modalities}
        self.fill = cfg.context_fill  # a (guided) harmonic fill of the generated cells as a fourth input
        # which: "harmonic" as trained, "coherence" (models/coherence.py) or "blend" (their mean);
        # `inpaint` and `extend` set it for their run (--fill, default blend:
        # inference.multidiffusion.fill_method); no parameter depends on it
        self.fill_method = "harmonic"
        # solved at pixel resolution through a pixel codec (its latent is the image's space-to-depth,
        # each band's f*f phases normalised alike), on the latent grid through a learnt one
        self.fill_factor = cfg.codec.factor if cfg.codec.kind is CodecKind.pixel else 1
        parts = 4 if self.fill else 3
        self.stem = nn.ModuleDict({m: nn.Conv2d(parts * c + 2, w, 3, padding=1) for m, c in ch.items()})
        self.trunk = nn.ModuleDict({m: nn.Sequential(*(layer for d in (1, 2, 4, 8) for layer in
                                                       (nn.GroupNorm(math.gcd(8, w), w), nn.SiLU(),
                                                        nn.Conv2d(w, w, 3, padding=d, dilation=d))),
                                                     nn.GroupNorm(math.gcd(8, w), w), nn.SiLU())
                                    for m in cfg.modalities})
        self.head = nn.ModuleDict({m: nn.Conv2d(w, c, 1) for m, c in ch.items()})
        # and a 1x1 linear map of the same inputs straight to the output: the trunk's GroupNorms
        # take out each sample's level, which is the first thing a fill must get right (trained
        # without it the path filled worse than the known cells' mean after 400 steps)
        self.direct = nn.ModuleDict({m: nn.Conv2d(parts * c + 2, c, 1) for m, c in ch.items()})
        for conv in (*self.head.values(), *self.direct.values()):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        if self.fill:  # the direct map starts as fill - prediction (inputs: seen, known, level, pred, guide, fill)
            for m, c in ch.items():
                eye = torch.eye(c)[:, :, None, None]
                self.direct[m].weight.data[:, 2 * c + 1 : 3 * c + 1] = -eye
                self.direct[m].weight.data[:, 3 * c + 2 :] = eye

    def share(self, z: torch.Tensor, m: str, t_cell: torch.Tensor, pred: torch.Tensor,
              guide: torch.Tensor, clean: torch.Tensor | None = None, edge: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) correction of slot `m`'s prediction; t_cell (B, 1, h, w) its cells' times;
        guide (B,) the other slots' mean 1 - time (0 without other slots); clean (B, G, h, w) the
        other slots' latents where they are wholly clean (zeros where not), which guide the fill;
        edge (B, C, h, w) the fill's values on the grid's outer ring (see `guided_fill`).
        Zero for a sample without generated (t>0) cells or without known ones (unless an edge is
        given), and on known cells."""
        known = (t_cell == 0).to(z.dtype)
        # with an edge (a scene fill's values on the border) a tile wholly inside a hole has its boundary too
        bounded = known.flatten(1).amax(1) if edge is None else torch.ones_like(known[:, 0, 0, 0])
        mixed = (bounded * (1 - known).flatten(1).amax(1))[:, None, None, None]
        seen = z * known
        level = seen.sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1.0)
        parts = [seen, known, level.expand_as(z), pred.to(z.dtype), guide.to(z.dtype)[:, None, None, None].expand_as(known)]
        if self.fill:
            f = self.fill_factor
            at = (lambda a: F.pixel_shuffle(a, f)) if f > 1 else (lambda a: a)  # noqa: E731
            g = at(clean) if clean is not None and clean.shape[1] else None
            filled = guided_fill(at(z), F.interpolate(known, scale_factor=f) if f > 1 else known, g,
                                 at(edge) if edge is not None else None, self.fill_method)
            parts.append(F.pixel_unshuffle(filled, f) if f > 1 else filled)
        x = torch.cat(parts, 1)
        out = self.head[m](self.trunk[m](self.stem[m](x))) + self.direct[m](x)
        return out * t_cell.to(z.dtype) * mixed


class RoutedGenerator(nn.Module):
    """Per slot: its own noisy latent tokens, token-wise AdaLN from (scene token + time + modality),
    attention within the slot, FFN routed by modality, a per-modality output head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, p = cfg.hidden, cfg.patch
        self.cfg = cfg
        extra = 1 if cfg.confidence else 0
        self.patch = nn.ModuleDict({m: nn.Conv2d(cfg.latent_channels(m), d, p, p) for m in cfg.modalities})
        n_routes = len(cfg.modalities)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, n_routes) for _ in range(cfg.gen_depth))
        self.ada = nn.ModuleList(_ada(d) for _ in range(cfg.gen_depth))
        self.heads = nn.ModuleDict({m: FinalLayer(d, p, cfg.latent_channels(m) + extra) for m in cfg.modalities})
        # The aligned path (pix2pix / SR3 / C-DiffSET): every slot shares one pixel grid, so each
        # target token also receives the other slots' latents at the same position, projected by a
        # zero-initialised linear (ControlNet's zero convolution: training starts from the scene-only
        # model and the gradient still reaches the projection).
        if cfg.aligned:
            self.align_patch = nn.ModuleDict({m: nn.Conv2d(cfg.latent_channels(m), d, p, p) for m in cfg.modalities})
            self.align_out = nn.Linear(d, d)
            nn.init.zeros_(self.align_out.weight)
            nn.init.zeros_(self.align_out.bias)
        if cfg.aligned_skip:
            self.skip = nn.ModuleDict({skip_key(a, b): nn.Conv2d(cfg.latent_channels(a), cfg.latent_channels(b), 1)
                                       for a in cfg.modalities for b in cfg.modalities if a != b})
            for conv in self.skip.values():
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        if cfg.pixel_path:
            self.pixel = PixelPath(cfg)
        if cfg.context_path:
            self.context = ContextPath(cfg)

    def skip_condition(self, latents: Sequence[torch.Tensor], mods: Sequence[str], t: torch.Tensor,
                       i: int) -> torch.Tensor:
        """(B, C_i, h, w): slot i's share of the direct skip, the mean over the other slots of a
        1x1 linear map of their latent, each weighted by (1 - its time) as in `aligned_condition`."""
        k = len(mods)
        parts = [self.skip[skip_key(mods[j], mods[i])](latents[j])
                 * (1.0 - cell_time(t, j, latents[j].shape[-2:])).to(latents[j].dtype) for j in range(k) if j != i]
        return torch.stack(parts).sum(0) / (k - 1)

    def aligned_condition(self, latents: Sequence[torch.Tensor], mods: Sequence[str],
                          t: torch.Tensor) -> torch.Tensor:
        """(K*B, N, D): for each slot, the mean of the OTHER slots' patch-embedded latents, each
        weighted by (1 - its time). A clean source (t=0) enters whole; a dropped one (pure noise at
        t=1, the classifier-free-guidance branch) contributes exactly nothing; a noisy slot of joint
        generation contributes in proportion to its signal."""
        k = len(mods)
        a = torch.stack([patchify_embed(self.align_patch[m], z) for z, m in zip(latents, mods)])  # (K, B, N, D)
        w = (1.0 - t.reshape(t.shape[0], k, -1)).transpose(0, 1).to(a.dtype)[..., None]  # (K, B, 1 or N, 1)
        weighted = a * w
        others = (weighted.sum(0, keepdim=True) - weighted) / max(k - 1, 1)  # (K, B, N, D) without itself
        return self.align_out(others.reshape(k * a.shape[1], a.shape[2], a.shape[3]))

    def forward(self, latents: Sequence[torch.Tensor], mods: Sequence[str], slot_emb: torch.Tensor,
                scene: torch.Tensor, pos: torch.Tensor, t: torch.Tensor | None = None,
                edges: Sequence[torch.Tensor | None] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        b, k, n, d = scene.shape
        u = torch.cat([patchify_embed(self.patch[m], z) for z, m in zip(latents, mods)])  # (K*B, N, D)
        slot_c = slot_emb.transpose(0, 1).reshape(k * b, -1, d)  # slot-major like u; 1 or N tokens
        u = u + pos[None].to(u.dtype) + slot_c
        if self.cfg.aligned and k > 1 and t is not None:
            u = u + self.aligned_condition(latents, mods, t).to(u.dtype)  # (K*B, N, D)
        c = scene.transpose(0, 1).reshape(k * b, n, d) + slot_c  # (K*B, N, D) token-wise condition
        routes = [self.cfg.modalities.index(m) for m in mods for _ in range(b)]
        for block, ada in zip(self.blocks, self.ada):
            u = block(u, ada(c), routes)
        preds, logvars = [], []
        pixel = (self.pixel.features(latents, mods, t)
                 if self.cfg.pixel_path and k > 1 and t is not None else None)
        for i, (z, m) in enumerate(zip(latents, mods)):
            ch = self.cfg.latent_channels(m)
            sl = slice(i * b, (i + 1) * b)
            out = self.heads[m](u[sl], c[sl])  # (B, N, p*p*(C+1))
            out = unpatchify(out, out.shape[-1] // self.cfg.patch**2, self.cfg.patch,
                             z.shape[-2] // self.cfg.patch, z.shape[-1] // self.cfg.patch)
            pred = out[:, :ch]
            if self.cfg.aligned_skip and k > 1 and t is not None:
                pred = pred + self.skip_condition(latents, mods, t, i).to(pred.dtype)
            share = self.pixel.to_slot(pixel, mods, i, pred) if pixel is not None else None
            if share is not None:
                if self.cfg.pixel_by_time:
                    share = share * cell_time(t, i, share.shape[-2:]).to(share.dtype)
                pred = pred + share.to(pred.dtype)
            if self.cfg.context_path and t is not None and t.dim() == 4:
                others = [j for j in range(k) if j != i]
                guide = (1.0 - t[:, others].flatten(1)).mean(1) if others else torch.zeros_like(t[:, 0, 0, 0])
                clean = [latents[j] * (t[:, j].flatten(1).amax(1) == 0).to(latents[j].dtype)[:, None, None, None]
                         for j in others] if self.cfg.context_fill else []
                pred = pred + self.context.share(z, m, cell_time(t, i, z.shape[-2:]), pred, guide,
                                                 torch.cat(clean, 1) if clean else None,
                                                 edges[i] if edges is not None and i < len(edges) else None).to(pred.dtype)
            preds.append(pred)
            logvars.append(out[:, ch:ch + 1])
        return preds, (logvars if self.cfg.confidence else None)


class ResidualAdapter(nn.Module):
    """Any2Any target adapter: z' = z + A(z), a small conv net whose last layer starts at zero."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, channels, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # the residual; callers add it


class EarthGenModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.codecs = nn.ModuleDict({m: build_codec(cfg.bands[m], cfg.codec) for m in cfg.modalities})
        self.t_embed = ScalarEmbedder(d, multiplier=1000.0)  # t in [0, 1], DiT's 0..1000 range
        self.m_embed = nn.Embedding(len(cfg.modalities), d)
        nn.init.normal_(self.m_embed.weight, std=0.02)
        self.conditions = GlobalConditions(cfg)
        self.scene = SceneEncoder(cfg)
        self.generator = RoutedGenerator(cfg)
        self.adapters = nn.ModuleDict(
            {m: ResidualAdapter(cfg.latent_channels(m), cfg.adapter_hidden) for m in cfg.modalities}
            if cfg.adapter_hidden else {})
        # Scene-consistency InfoNCE temperature, learnt (MetaEarth-MM eq. 16); CLIP's 0.07 start.
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.07)))

    def codec(self, modality: str) -> Codec:
        return self.codecs[modality]

    def flow_parameters(self) -> list[nn.Parameter]:
        """Everything the flow stage trains: all but the (frozen) codecs."""
        skip = {id(p) for p in self.codecs.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def check_slots(self, latents: Sequence[torch.Tensor], mods: Sequence[str]) -> None:
        if len(latents) != len(mods) or not mods:
            raise ValueError("one latent per slot modality, at least one slot")
        shape = latents[0].shape[-2:]
        for z, m in zip(latents, mods):
            if m not in self.cfg.modalities:
                raise ValueError(f"modality {m} is not one of the model's {self.cfg.modalities}")
            if z.shape[1] != self.cfg.latent_channels(m) or z.shape[-2:] != shape:
                raise ValueError(f"slot {m}: latent {tuple(z.shape)} does not match the model or the other slots")
            if shape[0] % self.cfg.patch or shape[1] % self.cfg.patch:
                raise ValueError(f"latent size {tuple(shape)} is not a multiple of patch {self.cfg.patch}")

    def forward(self, latents: Sequence[torch.Tensor], mods: Sequence[str], t: torch.Tensor,
                gsd: torch.Tensor | None = None, text: torch.Tensor | None = None,
                drop: torch.Tensor | None = None, edges: Sequence[torch.Tensor | None] | None = None) -> ModelOutput:
        """latents: K tensors (B, C_k, h, w); mods: K modality names; t: (B, K) times in [0, 1], or
        (B, K, h/patch, w/patch) a time per token (masked-slot inpainting: known tokens at t=0);
        gsd: (B,) m/px; text: (B, text_dim); drop: (B,) bool, True drops GSD and text for that sample;
        edges: per slot (in order, may stop early) None or (B, C_k, h, w), the context fill's values
        on the grid's outer ring (model.context_fill; scene inpainting gives each tile these).
        A non-finite GSD or a text row holding NaN is unknown for that sample: its null embedding."""
        self.check_slots(latents, mods)
        b, k = t.shape[:2]
        hp, wp = latents[0].shape[-2] // self.cfg.patch, latents[0].shape[-1] // self.cfg.patch
        if t.dim() != 2 and tuple(t.shape[2:]) != (hp, wp):
            raise ValueError(f"per-token times {tuple(t.shape)} do not match the {hp}x{wp} token grid")
        ref = self.m_embed.weight
        idx = torch.tensor([self.cfg.modalities.index(m) for m in mods], device=ref.device)
        t_emb = self.t_embed(t.reshape(-1)).reshape(b, k, *(() if t.dim() == 2 else (hp * wp,)), -1)
        g = self.conditions(b, gsd, text, drop, t_emb)
        m_emb = self.m_embed(idx).to(t_emb.dtype)
        if t.dim() == 2:
            slot_emb = t_emb + m_emb[None] + g[:, None]  # (B, K, D): c_k
        else:
            slot_emb = t_emb + m_emb[None, :, None] + g[:, None, None]  # (B, K, N, D): c_k per token
        pos = pos_embed_2d(self.cfg.hidden, hp, wp, ref.device)  # (N, D) shared by all slots
        scene = self.scene(latents, mods, slot_emb, pos)
        pred, logvar = self.generator(latents, mods, slot_emb, scene, pos, t, edges)
        return ModelOutput(pred, logvar, scene)

    def adapt(self, modality: str, x0: torch.Tensor) -> torch.Tensor:
        """Apply the target's residual adapter once to a sampled clean latent."""
        return x0 + self.adapters[modality](x0) if modality in self.adapters else x0

    def adapt_fill(self, modality: str, x0: torch.Tensor) -> torch.Tensor:
        """`adapt` for an inpainting or outpainting fill: none for a model.context_fill checkpoint,
        whose fill is a clean latent of the codec's own (the known cells' harmonic fill, corrected),
        not a translation: the adapter, trained on the generator's translations, printed its 4 px
        grid on it (benchmarks/inpaint_chips.py figure)."""
        return x0 if self.cfg.context_fill else self.adapt(modality, x0)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""`earthgen evaluate --joint a,b`: paired generation scored as MetaEarth-MM scores it.

The unified model generates both modalities together from noise, one pair per real held-out chip
holding both (same size and GSD as that chip). Scores:
- `fid_a`, `kid_a`, `fid_b`, `kid_b`: each generated modality against the real chips of that
  modality (Inception-v3 features, single bands replicated to 3, as for translation);
- (with `tile`, the model's native tile: generated chips of that side against the central window
  of each real chip, as a model trained on small crops generates best at their size)
- `cas`: CAS between the two generated chips of each pair (are they one place?), with the pair's
  CAS encoder; the `real pairs` row scores the real pairs with the same encoder (the reference a
  perfect generator would reach) and `shuffled pairs` real chips of a with real chips of b from
  other places (what unrelated chips score).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np
import torch

from earthgen_cli.claims import UNIFIED
from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.cas import DualEncoder, cas_score
from earthgen_cli.evaluate.fid import InceptionFeatures, fid_kid
from earthgen_cli.evaluate.metrics import to_unit
from earthgen_cli.evaluate.report import REAL_PAIRS, SHUFFLED_PAIRS, MethodScores
from earthgen_cli.evaluate.pair_source import Direction, PairSource
from earthgen_cli.evaluate.runner import chip_bar
from earthgen_cli.modalities import get_modality

class PairGenerator(Protocol):
    def generate_pair(self, modalities: Sequence[str], origins: Sequence[tuple[int, int]], height: int,
                      width: int, gsd: float | None, seed: int) -> dict[str, np.ndarray]: ...


def parse_joint(text: str) -> tuple[str, str]:
    """'osm,rgb' -> ('osm', 'rgb'): two different registered modalities."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if len(names) != 2:
        raise EarthgenError(f"--joint {text!r}: name two modalities, e.g. osm,rgb")
    a, b = (get_modality(n).name for n in names)
    if a == b:
        raise EarthgenError(f"--joint {text!r}: the two modalities must differ")
    return a, b


def joint_key(a: str, b: str) -> str:
    return f"joint:{a},{b}"


def center_crop(x: torch.Tensor, side: int | None) -> torch.Tensor:
    """The central side x side window of (B, C, H, W) chips (all of them when side is None or larger)."""
    h, w = x.shape[-2:]
    if side is None or (side >= h and side >= w):
        return x
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return x[..., y0 : y0 + min(side, h), x0 : x0 + min(side, w)]


def evaluate_joint(pairs: PairSource, pair: tuple[str, str], generator: PairGenerator, split: str,
                   batch_size: int, max_chips: int | None, seed: int, inception: InceptionFeatures | None,
                   encoder: DualEncoder | None, progress: Callable[[str], None] | None = None,
                   tile: int | None = None, bars: bool = False) -> list[MethodScores]:
    """`tile`: generate chips of this side (the model's native tile) and score them against the
    central window of that size of each real chip; None: whole chips. `bars`: a progress bar on
    stderr."""
    a, b = pair
    d = Direction(a, b)
    if pairs.count(split, d) == 0:
        raise EarthgenError(f"{pairs.name}: split {split} has no chip holding both {a} and {b} (--joint {a},{b})")
    if progress:
        progress(f"evaluating {joint_key(a, b)}")
    sa, sb = pairs.scaling[a], pairs.scaling[b]
    real: dict[str, list[torch.Tensor]] = {a: [], b: []}
    fake: dict[str, list[torch.Tensor]] = {a: [], b: []}
    seen = 0
    n = pairs.count(split, d)
    with chip_bar(min(n, max_chips or n), joint_key(a, b), bars) as bar:
        for batch in pairs.batches(split, d, batch_size, max_chips):
            source, target = center_crop(batch.source, tile), center_crop(batch.target, tile)
            h, w = source.shape[-2:]
            real[a].append(to_unit(sa.from_model(source), sa))
            real[b].append(to_unit(sb.from_model(target), sb))
            keys = [g if math.isfinite(g) else None for g in batch.gsd]
            out = {a: [None] * len(keys), b: [None] * len(keys)}
            for gsd in dict.fromkeys(keys):
                idx = [k for k, g in enumerate(keys) if g == gsd]
                made = generator.generate_pair((a, b), [(4096 * (seen + k), 0) for k in idx], h, w, gsd, seed)
                for m in (a, b):
                    for j, k in enumerate(idx):
                        out[m][k] = made[m][j]
            for m, scale in ((a, sa), (b, sb)):
                fake[m].append(to_unit(torch.from_numpy(np.stack(out[m])), scale))
            seen += len(keys)
            bar.update(len(keys))
    real_t = {m: torch.cat(v) for m, v in real.items()}
    fake_t = {m: torch.cat(v) for m, v in fake.items()}
    metrics: dict[str, float] = {}
    if inception is not None and seen >= 2:
        for m in (a, b):
            for name, value in fid_kid(inception(real_t[m]), inception(fake_t[m]), seed=seed).items():
                metrics[f"{name}_{m}"] = value
    results = []
    if encoder is not None:
        metrics["cas"] = float(cas_score(encoder, fake_t[a], a, fake_t[b], b).double().mean())
    results.append(MethodScores(joint_key(a, b), UNIFIED, metrics, seen))
    if encoder is not None:
        results.append(MethodScores(joint_key(a, b), REAL_PAIRS,
                                    {"cas": float(cas_score(encoder, real_t[a], a, real_t[b], b).double().mean())},
                                    seen))
        if seen >= 2:
            rolled = torch.roll(real_t[b], 1, dims=0)
            results.append(MethodScores(joint_key(a, b), SHUFFLED_PAIRS,
                                        {"cas": float(cas_score(encoder, real_t[a], a, rolled, b).double().mean())},
                                        seen))
    return results


def joint_warnings(pair: tuple[str, str], encoders: Mapping[frozenset, DualEncoder], fid: bool,
                   seen: int) -> list[str]:
    out = []
    if frozenset(pair) not in encoders:
        out.append(f"CAS left out for {joint_key(*pair)}: no CAS encoder for the pair")
    if fid and seen < 2:
        out.append(f"FID/KID left out for {joint_key(*pair)}: fewer than 2 chips")
    return out

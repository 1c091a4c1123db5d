"""How well a model fills a hole from what surrounds it, over many held-out chips.

    python benchmarks/inpaint_chips.py [--model earthgen_cli/weights/default] [--data data/sample64]
                                       [--split test] [--modality rgb] [--hole 24] [--steps 1 8]
                                       [--max-chips 64] [--cond nir | --chips-with nir] [--figure PNG]
                                       [--fills blend coherence harmonic]

A square hole of `--hole` px is cut in the centre of every fully valid, unflagged chip of the split
that has the modality; the model fills it from the rest of the chip (one slot; with `--cond MOD`
also the chip's whole MOD image, clean, as `inpaint --cond` gives it) with `--steps S` Euler steps, the known tokens given the way `earthgen inpaint` gives them:
clean at t=0 for a model.token_times checkpoint ("token"), re-imposed on their own noise path
for any checkpoint ("repaint", what earthgen inpaint does with checkpoints trained without masked
batches). Scored in the hole, in raw units, per chip and band, then averaged:
- RMSE; Pearson correlation with the reference (structure);
- controls: `context-mean` (the hole filled with the known pixels' own mean: a fill must beat it
  to have taken more than the level from the surroundings), `oracle-mean` (the hole's own true
  mean: knows the answer's level, a floor on RMSE for any flat fill) and `harmonic` (the smoothest
  surface through the known pixels around the hole, `models.earthgen.harmonic_fill` at pixel
  resolution: classical diffusion inpainting, no learning; a learnt fill must beat it to have
  taken more than the surroundings' gradients) and `coherence` (coherence transport,
  `models.coherence.coherence_fill`: the same surroundings carried along their edges and lines).
`--fills` run a context-fill model once per classical fill its path starts from (`earthgen inpaint
--fill`; default: the default fill only).
A fill is only worth its cost where it beats context-mean on RMSE and has a positive correlation.
`--figure`: the first chips, holed | each fill | original (one stretch per chip).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earthgen_cli import checkpoint as ck  # noqa: E402
from earthgen_cli.data.chips import ChipDataset  # noqa: E402
from earthgen_cli.evaluate.metrics import corr  # noqa: E402
from earthgen_cli.flow.generate import slot_velocity  # noqa: E402
from earthgen_cli.flow.sampling import get_schedule, shift_for_tokens  # noqa: E402
from earthgen_cli.inference.multidiffusion import FILLS, fill_method, whole_tokens  # noqa: E402
from earthgen_cli.models.coherence import coherence_fill  # noqa: E402
from earthgen_cli.models.earthgen import harmonic_fill  # noqa: E402


@torch.inference_mode()
def fill(model, mod: str, x: torch.Tensor, gsd: torch.Tensor, hole: torch.Tensor, steps: int, token: bool,
         seed: int, cond: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """x (B, C, H, W) model space, gsd (B,) m/px, hole (H, W) bool, cond {modality: (B, C', H, W)
    model space} -> (B, C, H, W) model space, the hole filled."""
    cfg = model.cfg
    f, p = cfg.codec.factor, cfg.patch
    z0 = model.codec(mod).encode(x).float()
    cell = torch.nn.functional.max_pool2d(hole[None, None].float(), f)[0, 0] > 0  # any pixel of it in the hole
    known_cell = torch.from_numpy(whole_tokens((~cell).numpy(), p)) > 0  # cells of fully known tokens
    tok = ~known_cell[::p, ::p]
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(z0.shape, generator=g)
    b = x.shape[0]
    sources = {m: model.codec(m).encode(c).float() for m, c in (cond or {}).items()}
    velocity = slot_velocity(model, [mod], [z0.shape[1]], sources, 1.0, gsd,
                             known=(~tok)[None].expand(b, -1, -1) if token else None)
    schedule = get_schedule(steps, shift_for_tokens(z0.shape[-2] * z0.shape[-1] // p**2))
    z = eps.clone()
    for t, t_next in zip(schedule[:-1], schedule[1:]):
        z = torch.where(known_cell, z0 if token else (1 - t) * z0 + t * eps, z)
        z = z + (t_next - t) * velocity(z, t)
    z = torch.where(known_cell, z0, z)
    img = model.codec(mod).decode(model.adapt_fill(mod, z)).float()  # as earthgen inpaint
    return torch.where(hole, img, x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "earthgen_cli" / "weights" / "default"))
    ap.add_argument("--data", default=str(ROOT / "data" / "sample64"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--modality", default="rgb")
    ap.add_argument("--hole", type=int, default=24)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--max-chips", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cond", help="a second modality of the chips, given whole and clean (guided fill)")
    ap.add_argument("--chips-with", help="only chips that also hold this modality (the --cond chips, unguided)")
    ap.add_argument("--fills", nargs="+", choices=FILLS, help="the context path's fills to run (default: blend, "
                    "as earthgen inpaint)")
    ap.add_argument("--figure")
    args = ap.parse_args()
    model, info = ck.load_model(Path(args.model))
    model.eval()
    mod = args.modality
    other = args.cond or args.chips_with
    mods = (mod, other) if other else (mod,)
    ds = ChipDataset(args.data, args.split, list(mods), require_all=True)
    picks = [i for i, c in enumerate(ds.chips) if not c.flags]
    samples = [ds[(i, mods)] for i in picks]
    samples = [s for s in samples if all(bool(s["valid"][m].all()) for m in mods)]
    if len(samples) > args.max_chips:  # spread over the split, not its first scenes
        samples = [samples[int(j)] for j in np.linspace(0, len(samples) - 1, args.max_chips)]
    scenes = {ds.chips[s["index"]].scene for s in samples}
    x = torch.stack([s["images"][mod] for s in samples])
    cond = {args.cond: torch.stack([s["images"][args.cond] for s in samples])} if args.cond else None
    gsd = torch.stack([s["gsd"] for s in samples])  # the chips' own: aerial and Sentinel-2 differ 30x
    size = x.shape[-1]
    lo = (size - args.hole) // 2
    hole = torch.zeros(size, size, dtype=torch.bool)
    hole[lo : lo + args.hole, lo : lo + args.hole] = True
    scaling = info.scaling[mod]
    raw = scaling.from_model(x.numpy())
    ref = raw[:, :, hole.numpy()]  # (B, C, P)
    ctx = raw[:, :, ~hole.numpy()].mean(2, keepdims=True)
    print(f"{args.model}: {mod}{' guided by ' + args.cond if args.cond else ''}, {len(samples)} chips of {len(scenes)} scenes ({args.split}), "
          f"{args.hole} px hole in {size} px chips, token_times={info.model.token_times}")

    def report(name: str, pred: np.ndarray, seconds: float | None = None) -> None:
        rmse = np.sqrt(((pred - ref) ** 2).mean((1, 2)))
        c = corr(torch.from_numpy(np.ascontiguousarray(pred))[..., None], torch.from_numpy(ref)[..., None]).numpy()
        tail = f", {seconds:.1f} s" if seconds is not None else ""
        print(f"{name:>16}: RMSE {rmse.mean():7.1f} (median {np.median(rmse):6.1f}), corr {np.mean(c):5.2f}{tail}")

    report("context-mean", np.broadcast_to(ctx, ref.shape))
    report("oracle-mean", np.broadcast_to(ref.mean(2, keepdims=True), ref.shape))
    known = (~hole).float()[None, None].expand(len(raw), 1, -1, -1)
    smooth = harmonic_fill(torch.from_numpy(raw).float(), known, iters=200).numpy()
    report("harmonic", smooth[:, :, hole.numpy()])
    coherent = coherence_fill(torch.from_numpy(raw).float(), known).numpy()
    report("coherence", coherent[:, :, hole.numpy()])
    shown = [("harmonic", smooth), ("coherence", coherent)]
    modes = ["token", "repaint"] if info.model.token_times else ["repaint"]
    fills = (args.fills or [None]) if info.model.context_fill else [None]
    # the fill enters with the known tokens clean (token mode) only: repaint runs once
    for steps, mode, how in ((s, m, f) for s in args.steps for m in modes for f in (fills if m == "token" else [None])):
        t0 = time.perf_counter()
        with fill_method(model, how):
            out = fill(model, mod, x, gsd, hole, steps, mode == "token", args.seed, cond)
        seconds = time.perf_counter() - t0
        full = scaling.from_model(out.numpy())
        name = f"{mode} {steps}{' ' + how if how else ''}"
        report(f"{mode} {steps} step{'s' if steps > 1 else ''}{' ' + how if how else ''}", full[:, :, hole.numpy()], seconds)
        shown.append((name, full))
    if args.figure:
        write_figure(Path(args.figure), "inpaint", raw, hole.numpy(), shown, n=6)


def write_figure(path: Path, title: str, raw: np.ndarray, hole: np.ndarray, shown: list, n: int) -> None:
    """Up to `n` of the (N, C, H, W) raw images, spread over N: holed | each (name, fills) | original,
    each row under its own 1-99 % stretch; `hole` (H, W) bool."""
    from earthgen_cli.evaluate.contact_sheet import GridSection, write_grid

    rows = []
    for i in np.linspace(0, raw.shape[0] - 1, min(n, raw.shape[0])).astype(int):
        lo = np.percentile(raw[i], 1, axis=(1, 2))[:, None, None]
        hi = np.percentile(raw[i], 99, axis=(1, 2))[:, None, None]
        unit = lambda a: np.clip((a - lo) / np.maximum(hi - lo, 1e-6), 0, 1)  # noqa: E731
        holed = unit(raw[i]).copy()
        holed[:, hole] = 0
        rows.append((holed, *(unit(a[i]) for _, a in shown), unit(raw[i])))
    columns = ("holed", *(name for name, _ in shown), "original")
    write_grid(path, [GridSection(title, columns, tuple(rows))])
    print(f"figure: {path}")


if __name__ == "__main__":
    main()

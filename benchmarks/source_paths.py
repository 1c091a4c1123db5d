"""Which conditioning path do a checkpoint's translations come from? (issue 11, item 3 ablation)

The unified model reaches a target slot from its sources by up to three routes: the scene encoder
(full attention over all slots, then token-wise AdaLN of the generator; MetaEarth-MM), the aligned
path (the source latent added to the target's tokens at the same position; pix2pix / SR3 style)
and, in models with `pixel_path`, the pixel path (a conv net at pixel resolution from the source
straight to the target's prediction). This script scores held-out chips with every route open,
then with routes cut:
  - `no pixel path` (pixel-path models only): its heads' output zeroed;
  - `scene only`: the aligned contribution is zeroed (a forward hook on `generator.align_out`),
    and the pixel path's too;
  - `aligned only`: the scene encoder sees each source replaced by fixed Gaussian noise (a forward
    pre-hook on `scene`), so the source reaches the target only through the aligned path;
  - `shuffled source`: both routes open, each chip's source taken from a chip of another scene.
Reports mean correlation and PSNR on the reference chip's own 0.5-99.5 % range (evaluate/metrics).

    python benchmarks/source_paths.py --model CKPT --data data/default64 --split test \
        --direction rgb:nir --direction sar:rgb [--estimate mean] [--max-chips 32]
"""

from __future__ import annotations

import argparse
import contextlib
import json

import numpy as np
import torch

from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.evaluate.controls import scene_derangement
from earthgen_cli.evaluate.metrics import corr, psnr_ref
from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.translator import TileBatch


@contextlib.contextmanager
def cut(model, path: str | None):
    handles = []
    zero = lambda m, i, out: torch.zeros_like(out)  # noqa: E731
    if path in ("aligned", "pixel") and hasattr(model.generator, "pixel"):
        handles += [head.register_forward_hook(zero) for head in model.generator.pixel.head.values()]
    if path == "aligned":
        handles.append(model.generator.align_out.register_forward_hook(zero))
    elif path == "scene":
        g = torch.Generator().manual_seed(1234)

        def blind(module, args):
            latents, mods, slot_emb, pos = args  # translation: slot 0 is the target, the rest sources
            noisy = [z if k == 0 else torch.randn(z.shape, generator=g).to(z) for k, z in enumerate(latents)]
            return (noisy, mods, slot_emb, pos)

        handles.append(model.scene.register_forward_pre_hook(blind))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--direction", action="append", required=True, help="SRC:TGT, repeatable")
    ap.add_argument("--estimate", default="mean", choices=["mean", "sample"])
    ap.add_argument("--max-chips", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    tr = ModelTranslator.load(args.model, device="cpu", estimate=args.estimate, steps=args.steps)
    tile = tr.native_tile or 32
    out = {}
    for direction in args.direction:
        src, tgt = direction.split(":")
        ds = ChipDataset(args.data, args.split, [src, tgt], require_all=True)
        keep = [i for i in range(len(ds)) if not getattr(ds.chips[i], "flags", "")]
        picks = [keep[int(j)] for j in np.linspace(0, len(keep) - 1, min(args.max_chips, len(keep)))] if keep else []
        scenes = [ds.chips[i].scene for i in picks]
        if len(set(scenes)) < 2:
            out[direction] = f"needs chips from >= 2 scenes, split {args.split} has {len(set(scenes))}"
            continue
        samples = [ds[(i, (src, tgt))] for i in picks]
        sc = tr.info.scaling
        raw = {m: np.stack([sc[m].from_model(s["images"][m].numpy()) for s in samples])[..., :tile, :tile]
               for m in (src, tgt)}
        valid = np.stack([(s["valid"][src] & s["valid"][tgt]).numpy() for s in samples])[..., :tile, :tile]
        n = len(picks)
        other = scene_derangement(scenes)  # evaluate's shuffled-source donors
        ref = torch.from_numpy(raw[tgt])
        vt = torch.from_numpy(valid)
        low, high = sc[tgt].raw_range()  # PSNR range floor as evaluate: 1e-3 of the dataset range
        floor = torch.tensor([1e-3 * (h - lo) for lo, h in zip(low, high)], dtype=torch.float64)

        def score(source: np.ndarray, path: str | None) -> dict[str, float]:
            batch = TileBatch({src: source}, valid, tuple((0, tile * i) for i in range(n)), gsd=10.0, seed=0)
            with cut(tr.model, path):
                pred = torch.from_numpy(tr.translate(batch, tgt))
            return {"corr": round(float(corr(pred, ref, vt).mean()), 3),
                    "psnr_ref": round(float(psnr_ref(pred, ref, vt, floor).mean()), 2)}

        oracle = torch.from_numpy(np.broadcast_to(raw[tgt].mean(axis=(2, 3), keepdims=True), raw[tgt].shape).copy())
        out[direction] = {"chips": n, "scenes": len(set(scenes)),
                          "all paths": score(raw[src], None),
                          **({"no pixel path": score(raw[src], "pixel")} if tr.model.cfg.pixel_path else {}),
                          "scene only": score(raw[src], "aligned"),
                          "aligned only": score(raw[src], "scene"),
                          "shuffled source": score(raw[src][other], None),
                          "oracle-mean": {"corr": 0.0, "psnr_ref": round(float(psnr_ref(oracle, ref, vt, floor).mean()), 2)}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

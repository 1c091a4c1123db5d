"""Does a map translation (osm -> rgb / pan) draw the buildings where the map has them?

    python benchmarks/map_follow.py --direction osm:rgb [--split test] [--models default CKPT ...]
                                    [--max-chips 64] [--grid out.png]

On the `split` chips of `data/sample64` that hold the pair (flagged and nodata chips left out),
each model's mean estimate and one sample (8 steps, seed 0) are scored against the reference:
- `corr`: Pearson correlation with the reference (per band, then averaged), and PSNR over the
  reference chip's own 0.5-99.5 % range beside `oracle-mean` (each chip's own per-band mean),
  as `earthgen evaluate` scores them;
- `footprint corr`: on chips whose map is 5-95 % building (render-osm's building colour), the
  correlation of the output's luminance with the building mask. The reference's own value says how
  buildings differ from their surroundings in this imagery; a model that ignores the map scores ~0.
  Its control, `shuffled`, scores each chip's output against the mask of another chip of the list
  (a derangement), so it measures what a fixed texture gets by chance.
`--grid` writes map | reference | each model's mean | each model's sample for the first 6 footprint chips,
every image column stretched by the reference chip's 2-98 % range.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earthgen_cli.evaluate.dataset_pairs import DatasetPairs  # noqa: E402
from earthgen_cli.evaluate.metrics import corr, psnr_ref, range_floor, to_unit  # noqa: E402
from earthgen_cli.evaluate.pair_source import parse_directions  # noqa: E402
from earthgen_cli.evaluate.runner import translator_method  # noqa: E402
from earthgen_cli.inference.default_model import DEFAULT  # noqa: E402
from earthgen_cli.inference.model_translator import ModelTranslator  # noqa: E402
from earthgen_cli.io.captions import building_mask  # noqa: E402


def mask_corr(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) correlation of each image's luminance (band mean) with its building mask (B, H, W)."""
    return corr(image.mean(1, keepdim=True), mask[:, None].to(torch.float64))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--direction", default="osm:rgb")
    p.add_argument("--data", default=str(ROOT / "data" / "sample64"))
    p.add_argument("--split", default="test")
    p.add_argument("--models", nargs="+", default=[DEFAULT])
    p.add_argument("--max-chips", type=int, default=64)
    p.add_argument("--grid", default=None)
    args = p.parse_args()
    d = parse_directions(args.direction)[0]
    if d.source != "osm":
        sys.exit(f"--direction {args.direction}: the source must be osm")
    pairs = DatasetPairs(Path(args.data))
    src_scale, tgt_scale = pairs.scaling[d.source], pairs.scaling[d.target]
    batches = []
    for b in pairs.batches(args.split, d, 16, args.max_chips):
        full = b.valid.flatten(1).all(dim=1)
        if full.any():
            batches.append(b.select(full.tolist()))
    if not batches:
        sys.exit(f"{args.data}: no nodata-free {d.key} chip in split {args.split}")
    ref = torch.cat([tgt_scale.from_model(b.target.to(torch.float64)) for b in batches])
    osm = torch.cat([src_scale.from_model(b.source.to(torch.float64)) for b in batches])
    mask = torch.from_numpy(np.stack([building_mask(chip) for chip in osm.numpy()]))
    share = mask.flatten(1).double().mean(1)
    foot = (share > 0.05) & (share < 0.95)
    n, nf = len(ref), int(foot.sum())
    scenes = sorted({s for b in batches for s in b.scene})
    print(f"{d.key}, split {args.split}: {n} chips from {len(scenes)} scene(s) ({', '.join(scenes)}); "
          f"{nf} with 5-95 % building")
    floor = range_floor(tgt_scale)
    order = torch.roll(torch.arange(nf), 1)  # another footprint chip's mask for each footprint chip
    oracle = ref.mean((2, 3), keepdim=True).expand_as(ref)
    print(f"{'':>32}  PSNR   corr  footprint corr  (shuffled)")
    print(f"{'oracle-mean':>32} {float(psnr_ref(oracle, ref, None, floor).mean()):6.2f}  0.000")
    print(f"{'reference':>32} {'':6}  {'':5}  {float(mask_corr(ref[foot], mask[foot]).mean()):13.3f}"
          f"  ({float(mask_corr(ref[foot], mask[foot][order]).mean()):6.3f})")
    columns = []
    for model in args.models:
        for estimate in ("mean", "sample"):
            tr = ModelTranslator.load(model, device="auto", steps=8, estimate=estimate)
            predict = translator_method(tr, d, pairs.scaling, seed=0)
            first, outs = 0, []
            for b in batches:
                outs.append(tgt_scale.from_model(predict(b, first).to(torch.float64)))
                first += len(b.source)
            out = torch.cat(outs)
            columns.append(out[foot][:6])
            fc, sh = mask_corr(out[foot], mask[foot]), mask_corr(out[foot], mask[foot][order])
            print(f"{(model + ' ' + estimate)[-32:]:>32} {float(psnr_ref(out, ref, None, floor).mean()):6.2f} "
                  f"{float(corr(out, ref).mean()):6.3f}  {float(fc.mean()):13.3f}  ({float(sh.mean()):6.3f})")
    if args.grid:
        from PIL import Image

        r = ref[foot][:6]
        lo, hi = (r.flatten(1).quantile(q, dim=1)[:, None, None, None] for q in (0.02, 0.98))
        stretch = lambda x: ((x - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)  # noqa: E731
        cols = [to_unit(osm[foot][:6], src_scale).clamp(0, 1), stretch(r), *(stretch(c) for c in columns)]
        cols = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c[:, :3] for c in cols]
        img = torch.cat([torch.cat(list(c), 1) for c in cols], 2).permute(1, 2, 0).numpy()
        Image.fromarray((img * 255).astype(np.uint8)).resize((img.shape[1] * 3, img.shape[0] * 3),
                                                             Image.NEAREST).save(args.grid)
        print(f"wrote {args.grid}: map | reference | " + " | ".join(f"{m} mean | {m} sample" for m in args.models))


if __name__ == "__main__":
    main()

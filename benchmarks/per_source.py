"""Which sources does a direction work on? Per source and split: mean per-chip correlation of a
checkpoint's output with the reference, PSNR over the reference chip's range beside oracle-mean's,
and the level error (output mean - reference mean, per band, as a fraction of the reference chip's
0.5-99.5 % range): where rgb->nir stands, and whether its misses are level or structure (issue 11).

    python benchmarks/per_source.py [--data data/sample64] [--model default] [--direction rgb:nir]
                                    [--estimate mean] [--chips 12] [--splits train test holdout]

Up to --chips unflagged chips per source and split (spread over the source's chips), translated as
64 px tiles in one batch per source through `ModelTranslator` (the path `earthgen translate` uses),
scored with evaluate's `corr` and `psnr_ref` (per chip and band, averaged).
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from earthgen_cli import checkpoint as ck
from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.evaluate.metrics import corr, psnr_ref
from earthgen_cli.inference.default_model import default_model_dir
from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.translator import TileBatch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/sample64")
    p.add_argument("--model", default="default")
    p.add_argument("--direction", default="rgb:nir")
    p.add_argument("--estimate", default="mean")
    p.add_argument("--chips", type=int, default=12)
    p.add_argument("--splits", nargs="+", default=["train", "test", "holdout"])
    args = p.parse_args()
    src, dst = args.direction.split(":")
    path = default_model_dir() if args.model == "default" else args.model
    info = ck.read_info(path)
    tr = ModelTranslator.load(path, device="cpu", estimate=args.estimate)
    for split in args.splits:
        ds = ChipDataset(args.data, split, [src, dst])
        by_source = collections.defaultdict(list)
        for i, c in enumerate(ds.chips):
            if src in c.modalities and dst in c.modalities and not c.flags:
                by_source[c.source].append(i)
        for source, idx in sorted(by_source.items()):
            idx = idx[:: max(1, len(idx) // args.chips)][: args.chips]
            items = [ds[(i, (src, dst))] for i in idx]
            raw = {m: np.stack([info.scaling[m].from_model(x["images"][m].numpy()) for x in items])
                   for m in (src, dst)}
            n, side = len(idx), raw[src].shape[-1]
            batch = TileBatch({src: raw[src]}, np.ones((n, side, side), bool),
                              tuple((0, side * k) for k in range(n)), gsd=float(ds.chips[idx[0]].gsd or 10.0), seed=0)
            out = tr.translate(batch, dst)
            o, r = torch.from_numpy(out).double(), torch.from_numpy(raw[dst]).double()
            oracle = r.mean(dim=(2, 3), keepdim=True).expand_as(r)
            lo, hi = torch.quantile(r.flatten(2), torch.tensor([0.005, 0.995], dtype=torch.float64), dim=2)
            level = ((o.mean(dim=(2, 3)) - r.mean(dim=(2, 3))) / (hi - lo)).mean().item()
            print(f"{split:8s} {source:22s} chips {n:3d}  corr {corr(o, r).mean().item():+.2f}  "
                  f"PSNR {psnr_ref(o, r).mean().item():6.2f} dB (oracle-mean {psnr_ref(oracle, r).mean().item():6.2f})  "
                  f"level error {level:+.2f} of range")


if __name__ == "__main__":
    main()

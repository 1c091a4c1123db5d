"""Which sources does a direction work on? Mean per-chip correlation of a checkpoint's output with
the reference, per source and split (issue 11: where rgb->nir stands).

    python benchmarks/per_source.py [--data data/sample64] [--model default] [--direction rgb:nir]
                                    [--estimate mean] [--chips 12] [--splits train test holdout]

Up to --chips unflagged chips per source and split (spread over the source's chips), translated as
64 px tiles in one batch per source through `ModelTranslator` (the path `earthgen translate` uses),
scored with evaluate's `corr` (per chip and band, averaged).
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from earthgen_cli import checkpoint as ck
from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.evaluate.metrics import corr
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
            c = corr(torch.from_numpy(out), torch.from_numpy(raw[dst])).mean().item()
            print(f"{split:8s} {source:22s} chips {n:3d}  corr {c:+.2f}")


if __name__ == "__main__":
    main()

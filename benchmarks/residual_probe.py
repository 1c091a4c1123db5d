"""How far is a checkpoint's mean estimate from what its source can give? (issue 11 diagnostic)

For a direction, take the mean estimate (the x0 prediction at t=1, `--estimate mean`) of unflagged
chips, its residual (reference - estimate, in model space, per pixel), and fit by least squares a
per-pixel linear map of the source's 3x3 neighbourhood, its squares and the estimate itself to
that residual on train chips. The share of the residual's variance the map explains on test chips
is how much a model at its L2 optimum at t=1 would still gain from a local function of its input
(`--pred-only`: the estimate alone, i.e. a rescaling; what that explains is miscalibration;
`--source-only`: the source terms alone, what a correction blind to the estimate, like the pixel
path, could give).

    python benchmarks/residual_probe.py --model CKPT --direction ms:nir [--data data/sample64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from earthgen_cli import checkpoint as ck
from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.flow.path import to_x0


def collect(model, data: str, split: str, src: str, tgt: str, n: int, pred_only: bool,
            source_only: bool = False):
    ds = ChipDataset(data, split, modalities=[src, tgt], require_all=True)
    idx = np.random.default_rng(0).permutation([i for i, c in enumerate(ds.chips) if not c.flags])[:n]
    g = torch.Generator().manual_seed(0)
    xs_, ys_ = [], []
    for i in idx:
        s = ds[(int(i), (src, tgt))]
        xs, xt = s["images"][src][None], s["images"][tgt][None]
        zs, z0 = model.codec(src).encode(xs), model.codec(tgt).encode(xt)
        noise, t = torch.randn(z0.shape, generator=g), torch.tensor([[0.0, 1.0]])
        with torch.no_grad():  # what `--estimate mean` returns: x0 at t=1, through the target's adapter
            out = model([zs, noise], [src, tgt], t).pred[1]
            est = model.codec(tgt).decode(model.adapt(tgt, to_x0(out, noise, t[:, 1], model.cfg.target)))
        resid = model.codec(tgt).decode(z0) - est
        nb = torch.cat([torch.roll(xs, (dy, dx), (2, 3)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
        feats = est if pred_only else torch.cat([nb, xs**2] + ([] if source_only else [est]), 1)
        xs_.append(feats[0].flatten(1).T.numpy())
        ys_.append(resid[0].flatten(1).T.numpy())
    x = np.concatenate(xs_)
    return np.c_[x, np.ones(len(x))], np.concatenate(ys_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="data/sample64")
    ap.add_argument("--direction", required=True, help="source:target, e.g. ms:nir")
    ap.add_argument("--train-chips", type=int, default=150)
    ap.add_argument("--test-chips", type=int, default=40)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--pred-only", action="store_true")
    which.add_argument("--source-only", action="store_true",
                    help="the source terms alone: what a correction that does not see the estimate "
                         "(the pixel path) could give")
    args = ap.parse_args()
    src, tgt = args.direction.split(":")
    model, _ = ck.load_model(Path(args.model), ema=True)
    model = model.float().eval()
    xtr, ytr = collect(model, args.data, "train", src, tgt, args.train_chips, args.pred_only, args.source_only)
    xte, yte = collect(model, args.data, "test", src, tgt, args.test_chips, args.pred_only, args.source_only)
    w = np.linalg.lstsq(xtr, ytr, rcond=None)[0]
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        e = y - x @ w
        print(f"{args.direction} {name}: residual variance {y.var():.4f} -> {e.var():.4f}, "
              f"explained {1 - e.var() / y.var():.2f}")


if __name__ == "__main__":
    main()

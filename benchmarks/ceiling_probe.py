"""How far can a direction go on this data? Leave-one-scene-out bounds against oracle-mean.

`oracle-mean` (each reference chip's own per-band mean) is the floor the claim rule asks a model to
beat. Its advantage is the chip's level, which a model has to read from the source. This probe
measures, per direction, over every unflagged in-region chip (train, val and test splits):

- level: the target chip's per-band mean predicted from source chip statistics (per band mean, std,
  10/50/90 percentiles) by ridge regression fit with the chip's whole scene left out (LOSO);
- structure: the deviation from the chip mean from the source's per-pixel deviations and their
  squares, either fit LOSO (a model could learn it) or on the chip itself against its own reference
  (an upper bound for any per-pixel polynomial map: no model trained elsewhere does better with it);

and prints mean PSNR (reference chip's 0.5-99.5 percentile range, per chip and band, as
`earthgen evaluate`) and correlation of each combination beside oracle-mean. If even "LOSO level +
chip-fit structure" cannot beat oracle-mean, a direction's failure is the level the source does
not tell, not the model.

    python benchmarks/ceiling_probe.py --direction sar:nir [--data data/sample64]
"""
from __future__ import annotations

import argparse
import collections
import datetime
import re

import numpy as np
import torch

from earthgen_cli.evaluate.baselines import oracle_mean
from earthgen_cli.evaluate.dataset_pairs import DatasetPairs
from earthgen_cli.evaluate.metrics import corr, psnr_ref, range_floor
from earthgen_cli.evaluate.pair_source import Direction


def chip_stats(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, 5C): per band mean, std and 10/50/90 percentiles."""
    f = x.reshape(*x.shape[:2], -1)
    return np.concatenate([f.mean(2), f.std(2), *np.percentile(f, (10, 50, 90), axis=2)], 1)


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1e-2):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.linalg.solve(xs.T @ xs + lam * len(x) * np.eye(xs.shape[1]), xs.T @ y)
    return lambda z: np.c_[(z - mu) / sd, np.ones(len(z))] @ w


def knn(x: np.ndarray, y: np.ndarray, k: int = 8):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd

    def predict(z):
        d = ((((z - mu) / sd)[:, None] - xs[None]) ** 2).sum(-1)
        return y[np.argsort(d, 1)[:, :k]].mean(1)
    return predict


def day_of_year(scene: str) -> tuple[float, float] | None:
    """The season of a scene whose name carries its acquisition date (YYYYMMDD, as BigEarthNet's
    do), on the unit circle; None when the name has no date."""
    m = re.search(r"(20\d\d)(\d\d)(\d\d)T", scene)
    if not m:
        return None
    day = datetime.date(*map(int, m.groups())).timetuple().tm_yday
    return np.cos(2 * np.pi * day / 365.25), np.sin(2 * np.pi * day / 365.25)


def loso_levels(feats: np.ndarray, tmeans: np.ndarray, folds) -> np.ndarray:
    """Each chip's level predicted with its scene left out: the better of ridge and 8 nearest chips
    (optimistic, as a bound should be)."""
    level_ridge, level_knn = np.zeros_like(tmeans), np.zeros_like(tmeans)
    for idx in folds:
        tr = np.setdiff1d(np.arange(len(feats)), idx)
        level_ridge[idx] = ridge(feats[tr], tmeans[tr])(feats[idx])
        level_knn[idx] = knn(feats[tr], tmeans[tr])(feats[idx])
    mse = lambda lv: ((lv - tmeans) ** 2).mean()
    return level_knn if mse(level_knn) < mse(level_ridge) else level_ridge


def r2(level: np.ndarray, tmeans: np.ndarray) -> float:
    return float(1 - ((level - tmeans) ** 2).sum() / ((tmeans - tmeans.mean(0)) ** 2).sum())


def pixel_terms(d: np.ndarray) -> np.ndarray:
    """(C, H, W) deviations from the chip mean -> (H*W, 2C): each pixel's deviation per band and its square."""
    d = d.reshape(d.shape[0], -1).T
    return np.c_[d, d**2 - (d**2).mean(0)]


def load(args, src: str, tgt: str):
    """Every fully valid, unflagged chip of the splits, in model space, as `earthgen evaluate` reads
    them: source (N, C, H, W), target (N, C', H, W), scene names."""
    pairs, d = DatasetPairs(args.data), Direction(src, tgt)
    srcs, tgts, scenes = [], [], []
    for split in args.splits.split(","):
        for b in pairs.batches(split, d, 64, limit=args.max_chips or None):
            keep = [k for k in range(len(b.index)) if bool(b.valid[k].all()) and args.only in b.scene[k]]
            srcs.append(b.source[keep])
            tgts.append(b.target[keep])
            scenes += [b.scene[k] for k in keep]
    return (pairs.scaling[tgt], torch.cat(srcs).double().numpy(), torch.cat(tgts).double().numpy(), scenes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--direction", required=True, help="source:target, e.g. sar:nir")
    ap.add_argument("--data", default="data/sample64")
    ap.add_argument("--splits", default="train,val,test")
    ap.add_argument("--max-chips", type=int, default=2000,
                    help="per split, shared out over its scenes as `evaluate` does (0: all)")
    ap.add_argument("--only", default="", help="keep scenes whose name contains this (e.g. bigearthnet)")
    ap.add_argument("--season", action="store_true",
                    help="add the acquisition day of year (from a YYYYMMDD in the scene name; scenes "
                         "without one are left out) to the level's features: what a date condition could add")
    args = ap.parse_args()
    src, tgt = args.direction.split(":")
    scaling, srcs, tgts, scenes = load(args, src, tgt)
    if args.season:
        keep = [i for i, s in enumerate(scenes) if day_of_year(s) is not None]
        srcs, tgts, scenes = srcs[keep], tgts[keep], [scenes[i] for i in keep]
    by_scene = collections.defaultdict(list)
    for i, s in enumerate(scenes):
        by_scene[s].append(i)
    folds = list(by_scene.values())
    print(f"{args.direction}: {len(srcs)} chips from {len(folds)} scenes ({args.splits}{', ' + args.only if args.only else ''})")
    if len(folds) < 3:
        raise SystemExit("ceiling_probe: fewer than 3 scenes, nothing to leave out")
    feats = chip_stats(srcs)
    tmeans = tgts.mean((2, 3))
    if args.season:  # the same chips without the date first, for comparison
        print(f"  without the date: level R2 {r2(loso_levels(feats, tmeans, folds), tmeans):.2f}")
        feats = np.c_[feats, np.array([day_of_year(s) for s in scenes]) * 3.0]  # weighted up for the neighbours
    level = loso_levels(feats, tmeans, folds)
    print(f"  level (ridge or 8 nearest chips of other scenes, the closer): RMSE "
          f"{np.sqrt(((level - tmeans) ** 2).mean()):.3f} (model units) against a mean within-chip std of "
          f"{tgts.std((2, 3)).mean():.3f}; R2 {r2(level, tmeans):.2f}")
    # least squares per scene left out from per-chip normal equations: memory flat in the chip count
    devs = tgts - tmeans[:, :, None, None]
    terms = [pixel_terms(x) for x in srcs - srcs.mean((2, 3), keepdims=True)]
    ys = [y.reshape(y.shape[0], -1).T for y in devs]
    xtx = np.stack([x.T @ x for x in terms])
    xty = np.stack([x.T @ y for x, y in zip(terms, ys)])
    struct_loso = np.zeros_like(tgts)
    for idx in folds:  # every scene left out in turn
        a, b = xtx.sum(0) - xtx[idx].sum(0), xty.sum(0) - xty[idx].sum(0)
        w = np.linalg.solve(a + 1e-9 * np.trace(a) * np.eye(len(a)), b)
        for i in idx:
            struct_loso[i] = (terms[i] @ w).T.reshape(tgts.shape[1:])
    # fit on the chip itself against its own reference: no model trained elsewhere does better
    struct_chip = np.stack([(x @ np.linalg.lstsq(x, y, rcond=None)[0]).T.reshape(tgts.shape[1:])
                            for x, y in zip(terms, ys)])
    flat = lambda m: np.broadcast_to(m[:, :, None, None], tgts.shape)
    rows = {
        "oracle-mean": None,
        "all-chips mean (constant)": flat(np.broadcast_to(tmeans.mean(0), tmeans.shape)),
        "LOSO level": flat(level),
        "LOSO level + LOSO structure": flat(level) + struct_loso,
        "LOSO level + chip-fit structure": flat(level) + struct_chip,
        "true level + LOSO structure": flat(tmeans) + struct_loso,
    }
    target = torch.from_numpy(tgts)
    floor, ref = range_floor(scaling), scaling.from_model(target)
    for name, pred in rows.items():
        model = oracle_mean(target, None, scaling) if pred is None else torch.from_numpy(np.ascontiguousarray(pred))
        raw = scaling.from_model(model)
        print(f"  {name:34s} PSNR (ref range) {psnr_ref(raw, ref, None, floor).mean():6.2f}  "
              f"corr {corr(raw, ref).mean():5.2f}")


if __name__ == "__main__":
    main()

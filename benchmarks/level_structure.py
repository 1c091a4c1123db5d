"""Where does a checkpoint's error in a direction come from: the chip's level or its structure?

    python benchmarks/level_structure.py --direction nir:rgb [--direction sar:nir ...]
        [--model default] [--split test] [--estimate mean] [--max-chips 16]

On the chips `earthgen evaluate` scores (the same split, `--max-chips` shared out over the scenes,
nodata chips left out, seed 0, 64 px tiles), each output is split into its level (per band chip
mean) and its structure (the deviation from it), and recombined with the reference's, scored as the
report scores (PSNR over the reference chip's own 0.5-99.5 % range, raw units):
- `model`: the output as it is; `oracle-mean`: the reference's own level, no structure;
- `model level, flat`: the output's level, no structure;
- `true level + model structure`: what the output would score with each chip's level right;
- the same with the structure scaled by 0.5 (a smoother output).
Also the output's structure amplitude against the reference's (std ratio) and the mean level error
in units of the reference chip's std. If `true level + model structure` beats `oracle-mean` while
`model` does not, the structure is good enough and the level is what is missing.

With `--level-fit`, also what a level read from the source could give: a ridge regression of the
target chip's level on the source chip's statistics (`ceiling_probe.chip_stats`), fit on every fully
valid chip of `--fit-split` (train), put under the model's structure; and the same with the
acquisition date beside the statistics (day of year on the unit circle, from scene names that carry
it, as BigEarthNet's do; fit and scored on the dated chips only): the most a date condition could
add to the level, short of a model that learns more from the date than a linear map does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from earthgen_cli.evaluate.dataset_pairs import DatasetPairs  # noqa: E402
from earthgen_cli.evaluate.metrics import corr, psnr_ref, range_floor  # noqa: E402
from earthgen_cli.evaluate.pair_source import parse_directions  # noqa: E402
from earthgen_cli.evaluate.runner import translator_method  # noqa: E402
from earthgen_cli.inference.default_model import DEFAULT  # noqa: E402
from earthgen_cli.inference.model_translator import ModelTranslator  # noqa: E402
from ceiling_probe import chip_stats, day_of_year, load, ridge  # noqa: E402


def seasons(scenes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which scenes carry their acquisition date (bool per scene) and those scenes' seasons (n, 2)."""
    days = [day_of_year(s) for s in scenes]
    return np.array([v is not None for v in days], bool), np.array([v for v in days if v is not None]).reshape(-1, 2)


def fit_level(data: str, d, split: str):
    """Ridge maps source chip statistics (and, for the second, the season) -> target chip level in
    raw units, fit on the fully valid chips of `split` (read as ceiling_probe reads them); with how
    many chips (dated) they saw."""
    scale, src, tgt, scenes = load(SimpleNamespace(data=data, splits=split, max_chips=0, only=""), d.source, d.target)
    x, y = chip_stats(src), scale.from_model(tgt).mean((2, 3))
    dated, s = seasons(scenes)
    with_date = ridge(np.c_[x[dated], s], y[dated]) if dated.sum() > x.shape[1] + 2 else None
    return ridge(x, y), with_date, len(x), int(dated.sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--direction", action="append", required=True)
    p.add_argument("--model", default=DEFAULT)
    p.add_argument("--data", default=str(ROOT / "data" / "sample64"))
    p.add_argument("--split", default="test")
    p.add_argument("--estimate", default="mean", choices=["mean", "sample"])
    p.add_argument("--max-chips", type=int, default=16)
    p.add_argument("--level-fit", action="store_true",
                   help="also score levels predicted from the source's chip statistics (and the date)")
    p.add_argument("--fit-split", default="train", help="the split --level-fit fits on")
    args = p.parse_args()
    pairs = DatasetPairs(Path(args.data))
    translator = ModelTranslator.load(args.model, device="auto", steps=8, estimate=args.estimate)
    for d in (d for text in args.direction for d in parse_directions(text)):
        predict = translator_method(translator, d, pairs.scaling, seed=0, tile=64)
        scale = pairs.scaling[d.target]
        floor = range_floor(scale)
        outs, refs, feats, scenes, seen = [], [], [], [], 0
        for b in pairs.batches(args.split, d, 8, args.max_chips):
            full = b.valid.flatten(1).all(dim=1)
            first, seen = seen, seen + b.source.shape[0]  # noise keyed as evaluate keys it
            if full.any():
                scenes += [b.scene[k] for k in range(len(b.index)) if bool(full[k])]
                b = b.select(full.tolist())
                feats.append(chip_stats(b.source.double().numpy()))
                outs.append(scale.from_model(predict(b, first).to(torch.float64)))
                refs.append(scale.from_model(b.target.to(torch.float64)))
        out, ref = torch.cat(outs), torch.cat(refs)
        lvl_o, lvl_r = out.mean((2, 3), keepdim=True), ref.mean((2, 3), keepdim=True)
        dev_o, dev_r = out - lvl_o, ref - lvl_r

        def score(x: torch.Tensor, rows: torch.Tensor | None = None) -> str:
            """x: all chips, or (rows given) those rows' chips."""
            return f"{float(psnr_ref(x, ref if rows is None else ref[rows], None, floor).mean()):6.2f}"

        sd_r = dev_r.square().mean((2, 3), keepdim=True).sqrt()
        print(f"{d.key} ({args.split}, {len(out)} chips, {args.estimate} estimate):")
        print(f"  model {score(out)} (corr {float(corr(out, ref).mean()):.2f}) | oracle-mean "
              f"{score(lvl_r.expand_as(ref))} | model level, flat {score(lvl_o.expand_as(ref))}")
        print(f"  true level + model structure {score(lvl_r + dev_o)} | the same x0.5 {score(lvl_r + 0.5 * dev_o)}")
        print(f"  structure std / reference's {float(dev_o.square().mean().sqrt() / dev_r.square().mean().sqrt()):.2f}; "
              f"level error / reference chip std {float(((lvl_o - lvl_r).abs() / sd_r).mean()):.2f}")
        if args.level_fit:
            plain, dated_fit, n_fit, n_dated = fit_level(args.data, d, args.fit_split)
            x = np.concatenate(feats)
            as_level = lambda a: torch.from_numpy(a)[..., None, None].to(out.dtype)  # noqa: E731
            fitted = as_level(plain(x))
            print(f"  level fit on {args.fit_split} ({n_fit} chips): fitted level + model structure "
                  f"{score(fitted + dev_o)} | fitted level, flat {score(fitted.expand_as(ref))}")
            dated, s = seasons(scenes)
            if dated_fit is None or not dated.any():
                print(f"  with the date: too few dated chips ({n_dated} to fit on, {int(dated.sum())} to score)")
                continue
            rows = torch.from_numpy(dated)
            by_date = as_level(dated_fit(np.c_[x[dated], s]))
            print(f"  its {int(dated.sum())} dated chips (fit on {n_dated}): model {score(out[rows], rows)} | "
                  f"oracle-mean {score(lvl_r.expand_as(ref)[rows], rows)} | fitted level + model structure "
                  f"{score((fitted + dev_o)[rows], rows)}; with the date {score(by_date + dev_o[rows], rows)}")


if __name__ == "__main__":
    main()

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
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earthgen_cli.evaluate.dataset_pairs import DatasetPairs  # noqa: E402
from earthgen_cli.evaluate.metrics import corr, psnr_ref, range_floor  # noqa: E402
from earthgen_cli.evaluate.pair_source import parse_directions  # noqa: E402
from earthgen_cli.evaluate.runner import translator_method  # noqa: E402
from earthgen_cli.inference.default_model import DEFAULT  # noqa: E402
from earthgen_cli.inference.model_translator import ModelTranslator  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--direction", action="append", required=True)
    p.add_argument("--model", default=DEFAULT)
    p.add_argument("--data", default=str(ROOT / "data" / "sample64"))
    p.add_argument("--split", default="test")
    p.add_argument("--estimate", default="mean", choices=["mean", "sample"])
    p.add_argument("--max-chips", type=int, default=16)
    args = p.parse_args()
    pairs = DatasetPairs(Path(args.data))
    translator = ModelTranslator.load(args.model, device="auto", steps=8, estimate=args.estimate)
    for d in (d for text in args.direction for d in parse_directions(text)):
        predict = translator_method(translator, d, pairs.scaling, seed=0, tile=64)
        scale = pairs.scaling[d.target]
        floor = range_floor(scale)
        outs, refs, seen = [], [], 0
        for b in pairs.batches(args.split, d, 8, args.max_chips):
            full = b.valid.flatten(1).all(dim=1)
            first, seen = seen, seen + b.source.shape[0]  # noise keyed as evaluate keys it
            if full.any():
                b = b.select(full.tolist())
                outs.append(scale.from_model(predict(b, first).to(torch.float64)))
                refs.append(scale.from_model(b.target.to(torch.float64)))
        out, ref = torch.cat(outs), torch.cat(refs)
        lvl_o, lvl_r = out.mean((2, 3), keepdim=True), ref.mean((2, 3), keepdim=True)
        dev_o, dev_r = out - lvl_o, ref - lvl_r

        def score(x: torch.Tensor) -> str:
            return f"{float(psnr_ref(x, ref, None, floor).mean()):6.2f}"

        sd_r = dev_r.square().mean((2, 3), keepdim=True).sqrt()
        print(f"{d.key} ({args.split}, {len(out)} chips, {args.estimate} estimate):")
        print(f"  model {score(out)} (corr {float(corr(out, ref).mean()):.2f}) | oracle-mean "
              f"{score(lvl_r.expand_as(ref))} | model level, flat {score(lvl_o.expand_as(ref))}")
        print(f"  true level + model structure {score(lvl_r + dev_o)} | the same x0.5 {score(lvl_r + 0.5 * dev_o)}")
        print(f"  structure std / reference's {float(dev_o.square().mean().sqrt() / dev_r.square().mean().sqrt()):.2f}; "
              f"level error / reference chip std {float(((lvl_o - lvl_r).abs() / sd_r).mean()):.2f}")


if __name__ == "__main__":
    main()

"""The README's and model card's translation figure, made through the CLI (issue 11).

    python benchmarks/figure_translate.py [--model default] [-o docs/images/translate_rgb_nir_train_scene.png]

Translates `bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48`'s RGB to NIR twice (`--estimate mean`;
`--estimate sample --seed 0`) and writes one PNG: RGB (each band stretched over its 1-99 %),
reference NIR, mean, sample, the three NIR panels under ONE stretch (the reference's 1-99 %), so
a level error shows as a darker or brighter panel. Prints each output's correlation with the
reference and its mean against the reference's. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image

SCENE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bigearthnet_mm" / "S2A_MSIL2A_20170613T101031_87_48"


def stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((a - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("-o", "--output", default="docs/images/translate_rgb_nir_train_scene.png")
    ap.add_argument("--scale", type=int, default=2, help="pixel replication of each panel")
    args = ap.parse_args()
    if not SCENE.is_dir():
        sys.exit(f"figure_translate: {SCENE} not found (needs ../shared/data)")
    with rasterio.open(SCENE / "s2_rgb.tif") as src, rasterio.open(SCENE / "s2_nir.tif") as nir:
        rgb, ref = src.read().astype(np.float64), nir.read(1).astype(np.float64)
    outs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("mean", ["--estimate", "mean"]), ("sample", ["--estimate", "sample", "--seed", "0"])):
            out = Path(tmp) / f"{name}.tif"
            subprocess.run([sys.executable, "-m", "earthgen_cli", "translate", str(SCENE / "s2_rgb.tif"), "--from", "rgb",
                            "--to", "nir", "--model", args.model, "-o", str(out), "-q", *extra], check=True)
            with rasterio.open(out) as src:
                outs[name] = src.read(1).astype(np.float64)
    lo, hi = np.percentile(ref, [1, 99])
    panels = [np.stack([stretch(b, *np.percentile(b, [1, 99])) for b in rgb], -1)]
    panels += [np.repeat(stretch(a, lo, hi)[..., None], 3, -1) for a in (ref, outs["mean"], outs["sample"])]
    gap = np.full((rgb.shape[1], 4, 3), 255, np.uint8)
    row = np.concatenate(sum(([p, gap] for p in panels), [])[:-1], 1)
    Image.fromarray(row).resize((row.shape[1] * args.scale, row.shape[0] * args.scale), Image.NEAREST).save(args.output)
    print(f"reference NIR mean {ref.mean():.0f}")
    for name, a in outs.items():
        print(f"{name:7s} corr {np.corrcoef(a.ravel(), ref.ravel())[0, 1]:+.2f}  mean {a.mean():.0f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""How well `earthgen extend` restores a strip cut off a real scene.

    python benchmarks/extend_cut.py [--scene ../shared/data/bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48]
                                    [--by 32] [--models default CKPT ...] [--steps 1 8]
                                    [--fills coherence harmonic blend]

The scene's RGB loses its last `--by` columns; each model extends the cut scene east by as many,
and the new strip is scored against the columns that were cut (raw units): RMSE, mean per-band
correlation, the strip's mean per band (the truth's first). Controls: `flat` (the strip filled
with the mean of the known strip of the same width next to it) and `oracle-mean` (the cut strip's
own per-band mean). Without `--steps` each model runs at its own default (`extend --steps`);
`--fills` runs each model once per `extend --fill` (a context-fill model's, as the default model).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earthgen_cli.evaluate.metrics import corr  # noqa: E402

SCENE = ROOT.parent / "shared" / "data" / "bigearthnet_mm" / "S2A_MSIL2A_20170613T101031_87_48"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", default=str(SCENE))
    p.add_argument("--by", type=int, default=32)
    p.add_argument("--models", nargs="+", default=["default"])
    p.add_argument("--steps", nargs="*", type=int, default=[], help="steps to run (default: each model's own)")
    p.add_argument("--fills", nargs="*", default=[], help="extend --fill values to run (default: the default fill)")
    args = p.parse_args()
    with rasterio.open(Path(args.scene) / "s2_rgb.tif") as src:
        x = src.read()
        profile = src.profile
        keep = src.width - args.by
        profile.update(width=keep, transform=src.window_transform(Window(0, 0, keep, src.height)))
    truth = x[:, :, keep:].astype(np.float64)

    def score(name: str, y: np.ndarray) -> None:
        rmse = np.sqrt(((y - truth) ** 2).mean())
        c = float(corr(torch.from_numpy(np.ascontiguousarray(y))[None], torch.from_numpy(truth)[None]))  # mean over bands
        print(f"{name:>24}: RMSE {rmse:6.0f}, corr {c:5.2f}, strip mean {y.mean((1, 2)).round()}")

    print(f"{args.scene}: last {args.by} of {x.shape[2]} columns cut; truth strip mean {truth.mean((1, 2)).round()}")
    near = x[:, :, keep - args.by : keep].astype(np.float64)
    score("flat", np.broadcast_to(near.mean((1, 2), keepdims=True), truth.shape))
    score("oracle-mean", np.broadcast_to(truth.mean((1, 2), keepdims=True), truth.shape))
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.tif"
        with rasterio.open(cut, "w", **profile) as dst:
            dst.write(x[:, :, :keep])
        for model in args.models:
            for steps, fill in ((s, f) for s in args.steps or [None] for f in args.fills or [None]):
                out = Path(tmp) / "out.tif"
                cmd = [sys.executable, "-m", "earthgen_cli", "extend", str(cut), "--by", str(args.by), "--side", "east",
                       "--from", "rgb", "-m", model, "-o", str(out), "--overwrite", "-q"]
                cmd += (["--steps", str(steps)] if steps else []) + (["--fill", fill] if fill else [])
                subprocess.run(cmd, check=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
                with rasterio.open(out) as src:
                    score(f"{model} {'steps ' + str(steps) if steps else 'default steps'}{' ' + fill if fill else ''}",
                          src.read()[:, :, keep:].astype(np.float64))


if __name__ == "__main__":
    main()

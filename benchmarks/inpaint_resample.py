"""How well an inpainting fill agrees with its surroundings, with and without RePaint resampling.

    python benchmarks/inpaint_resample.py [--scene ../shared/data/bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48]
                                          [--model default] [--hole 40:80,40:80] [--runs 1x1 1x1:harmonic 4x8]
                                          [--figure docs/images/inpaint_rgb.png] [--cond nir=s2_nir.tif]

A square hole is cut into the scene's RGB and filled with `earthgen inpaint --resample R --steps S`
for each R x S (`RxS:FILL` also sets `inpaint --fill FILL`). Printed per run, against the reference pixels of the hole:
- edge: mean |jump| across the hole's border (the reference's own is printed first; a fill that
  continues its surroundings comes close to it);
- hole mean per band (reference first), RMSE and mean per-band correlation in the hole;
- oracle-mean RMSE: the hole filled with its own true per-band mean (a fill must beat it to have
  taken structure from the surroundings);
- harmonic: the smoothest surface through the surrounding pixels (classical diffusion
  inpainting, `models.earthgen.harmonic_fill`), scored like a run, and `coherence` (coherence
  transport, `models.coherence.coherence_fill`: the surroundings carried along their edges).
`--cond MOD=FILE`: every run guided by that raster of the scene folder (`inpaint --cond`).
`--figure PNG`: the holed input, each run's output and the original side by side (one stretch).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earthgen_cli.evaluate.metrics import corr  # noqa: E402
from earthgen_cli.models.coherence import coherence_fill  # noqa: E402
from earthgen_cli.models.earthgen import harmonic_fill  # noqa: E402

SCENE = ROOT.parent / "shared" / "data" / "bigearthnet_mm" / "S2A_MSIL2A_20170613T101031_87_48"


def edge_jump(a: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> float:
    jumps = [a[:, y0, x0:x1] - a[:, y0 - 1, x0:x1], a[:, y1 - 1, x0:x1] - a[:, y1, x0:x1],
             a[:, y0:y1, x0] - a[:, y0:y1, x0 - 1], a[:, y0:y1, x1 - 1] - a[:, y0:y1, x1]]
    return float(np.mean([np.abs(j).mean() for j in jumps]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", default=str(SCENE))
    p.add_argument("--model", default="default")
    p.add_argument("--hole", default="40:80,40:80", help="rows y0:y1,x0:x1")
    p.add_argument("--runs", nargs="+", default=["1x1", "1x1:harmonic", "1x8", "4x8"], help="RESAMPLExSTEPS[:FILL]")
    p.add_argument("--cond", help="MOD=FILE in the scene folder, given to every run (guided inpainting)")
    p.add_argument("--tile", type=int, help="inpaint --tile (default: the checkpoint's)")
    p.add_argument("--figure", help="write the holed input | each run | the original as this PNG")
    args = p.parse_args()
    (y0, y1), (x0, x1) = (map(int, part.split(":")) for part in args.hole.split(","))
    rgb = Path(args.scene) / "s2_rgb.tif"
    with rasterio.open(rgb) as src:
        ref = src.read().astype(np.float64)
        profile = src.profile
    hole_ref = ref[:, y0:y1, x0:x1]
    shown = []
    oracle = np.sqrt(((hole_ref - hole_ref.mean((1, 2), keepdims=True)) ** 2).mean())
    print(f"scene {rgb}, hole rows {y0}:{y1} cols {x0}:{x1}, model {args.model}")
    print(f"reference: edge {edge_jump(ref, y0, y1, x0, x1):.0f}, hole mean {hole_ref.mean((1, 2)).round()}, "
          f"oracle-mean RMSE {oracle:.0f}")

    def score(name: str, a: np.ndarray, seconds: float | None = None) -> None:
        h = a[:, y0:y1, x0:x1]
        rmse = np.sqrt(((h - hole_ref) ** 2).mean())
        c = float(corr(torch.from_numpy(h)[None], torch.from_numpy(hole_ref)[None]))  # mean over bands
        tail = f", {seconds:.1f} s" if seconds is not None else ""
        print(f"{name}: edge {edge_jump(a, y0, y1, x0, x1):.0f}, hole mean {h.mean((1, 2)).round()}, "
              f"RMSE {rmse:.0f}, corr {c:.2f}{tail}")

    known = torch.ones(1, 1, *ref.shape[1:])
    known[..., y0:y1, x0:x1] = 0
    smooth = harmonic_fill(torch.from_numpy(ref).float()[None], known, iters=200)[0].double().numpy()
    score("harmonic", smooth)
    shown.append(("harmonic", smooth[None]))
    carried = coherence_fill(torch.from_numpy(ref).float()[None], known)[0].double().numpy()
    score("coherence", carried)
    shown.append(("coherence", carried[None]))
    with tempfile.TemporaryDirectory() as tmp:
        mask = Path(tmp) / "mask.tif"
        m = np.zeros((1, ref.shape[1], ref.shape[2]), np.uint8)
        m[0, y0:y1, x0:x1] = 1
        with rasterio.open(mask, "w", **{**profile, "count": 1, "dtype": "uint8", "nodata": None}) as dst:
            dst.write(m)
        for run in args.runs:
            spec, _, fill = run.partition(":")
            resample, steps = (int(v) for v in spec.split("x"))
            out = Path(tmp) / f"fill_{spec}_{fill}.tif"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "earthgen_cli", "inpaint", str(rgb), "--mask", str(mask), "--from",
                            "rgb", "--model", args.model, "--steps", str(steps), "--resample", str(resample),
                            *(["--cond", f"{args.cond.split('=')[0]}={Path(args.scene) / args.cond.split('=')[1]}"]
                              if args.cond else []), *(["--tile", str(args.tile)] if args.tile else []),
                            *(["--fill", fill] if fill else []), "-o", str(out), "-q"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stderr=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            with rasterio.open(out) as src:
                a = src.read().astype(np.float64)
            shown.append((f"fill {spec}{' ' + fill if fill else ''}", a[None]))
            score(f"resample {resample} steps {steps:>2}{' ' + fill if fill else ''}", a, seconds)
    if args.figure:
        from inpaint_chips import write_figure  # one figure layout for both inpainting benchmarks

        hole = np.zeros(ref.shape[-2:], bool)
        hole[y0:y1, x0:x1] = True
        write_figure(Path(args.figure), "inpaint rgb", ref[None], hole, shown, n=1)


if __name__ == "__main__":
    main()

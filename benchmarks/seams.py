"""Seam ratios of whole-scene generation: mean |adjacent-pixel difference| across tile borders
divided by the same inside tiles (1.0 = borders invisible; the issue's bar is <= 1.10).

Cases, all through the real CLI: `joint` over a bbox of N x N tiles with latent blending at every
step (overlap = tile/4), the same without overlap (tiles sampled independently: the control that
shows what a seam looks like to this metric), and `translate` of a real SAR scene with the model.
Without --model a tiny rgb+sar model is trained in-process for ~10 s on smooth tiles (it paints
one smooth level per tile, so disagreeing tiles are visible); pass a trained checkpoint to measure
a real one. Usage:
    python benchmarks/seams.py [--model CKPT] [--tiles 4] [--tile 32] [--steps 4] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import rasterio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers: smooth model, seam metric (one definition)

from generate_fixtures import seam_ratio, smooth_checkpoint  # noqa: E402
from scene_fixtures import BEN_MM, run_cli  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _joint(model: str, out: Path, tile: int, overlap: int, tiles: int, steps: int, seed: int) -> tuple[float, ...]:
    size = (tile + (tiles - 1) * (tile - overlap)) * 10
    t0 = time.perf_counter()
    r = run_cli(["joint", "--pair", "rgb,sar", "--bbox", f"500000,4650000,{500000 + size},{4650000 + size}",
                 "--bbox-crs", "EPSG:32633", "--gsd", "10", "-m", model, "-o", out, "--tile", tile,
                 "--overlap", overlap, "--steps", steps, "--seed", seed, "-q", "--overwrite"])
    if r.exit_code:
        raise SystemExit(r.stderr)
    seconds = time.perf_counter() - t0
    with rasterio.open(out / "rgb.tif") as a, rasterio.open(out / "sar.tif") as b:
        return seam_ratio(a.read(), tile, overlap), seam_ratio(b.read(), tile, overlap), seconds, a.width


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--tile", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or str(smooth_checkpoint(tmp / "smooth"))
        overlap = args.tile // 4
        print(f"| case | seed | size (px) | rgb ratio | sar ratio | seconds |\n|---|---|---|---|---|---|")
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, ov in (("joint, latent blending", overlap), ("joint, no overlap (control)", 0)):
                rgb, sar, sec, w = _joint(model, tmp / "j", args.tile, ov, args.tiles, args.steps, seed)
                print(f"| {name} | {seed} | {w} | {rgb:.3f} | {sar:.3f} | {sec:.2f} |")
        sar_in = SHARED / BEN_MM / "s1_vvvh_db.tif"
        if sar_in.is_file():
            t0 = time.perf_counter()
            r = run_cli(["translate", sar_in, "--from", "sar", "--to", "rgb", "-m", model, "-o", tmp / "t.tif",
                         "--tile", args.tile, "--overlap", overlap, "-q"])
            if r.exit_code:
                raise SystemExit(r.stderr)
            with rasterio.open(tmp / "t.tif") as t:
                ratio = seam_ratio(t.read(), args.tile, overlap)
            print(f"| translate sar->rgb (real S1) | 0 | 120 | {ratio:.3f} | - | {time.perf_counter() - t0:.2f} |")


if __name__ == "__main__":
    main()

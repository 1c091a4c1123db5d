"""Seam ratios of whole-scene generation: mean |adjacent-pixel difference| across tile borders
divided by the same inside tiles (1.0 = borders invisible; the issue's bar is <= 1.10).

Cases, all through the real CLI: `joint` over a bbox of N x N tiles with latent blending at every
step (overlap = tile/4), the same tiles sampled alone and blended only at the end (the ablation:
what pixel-space blending alone gives), the same without overlap (tiles sampled independently: the control that
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
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers: smooth model, CLI runner, scene fixtures

from earthgen_cli.evaluate.seams import seam_ratio  # noqa: E402
from generate_fixtures import smooth_checkpoint  # noqa: E402
from scene_fixtures import BEN_MM, run_cli  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _joint(model: str, out: Path, tile: int, overlap: int, tiles: int, steps: int, seed: int) -> tuple:
    size = (tile + (tiles - 1) * (tile - overlap)) * 10
    t0 = time.perf_counter()
    r = run_cli(["joint", "--pair", "rgb,sar", "--bbox", f"500000,4650000,{500000 + size},{4650000 + size}",
                 "--bbox-crs", "EPSG:32633", "--gsd", "10", "-m", model, "-o", out, "--tile", tile,
                 "--overlap", overlap, "--steps", steps, "--seed", seed, "-q", "--overwrite"])
    if r.exit_code:
        raise SystemExit(r.stderr)
    seconds = time.perf_counter() - t0
    with rasterio.open(out / "rgb.tif") as a, rasterio.open(out / "sar.tif") as b:
        rgb, sar = a.read(), b.read()
    return (seam_ratio(rgb, tile, overlap), seam_ratio(sar, tile, overlap), seconds, a.width,
            seam_ratio(rgb, tile, overlap, zones=True))


def _final_only(model: str, tmp: Path, tile: int, overlap: int, tiles: int, steps: int, seed: int) -> float:
    """The ablation: every tile sampled alone from the same position-keyed noise and blended once,
    at the end (how `translate` blends), instead of at every step. rgb seam ratio."""
    import numpy as np

    from earthgen_cli.inference.canvas import MemmapCanvas, SceneLayout
    from earthgen_cli.flow.generate import SamplingOptions
    from earthgen_cli.inference.multidiffusion import decode_canvas, modality_salt, noise_canvas, sample_scene
    from earthgen_cli.inference.runtime import load_runtime

    sm = load_runtime(model, "cpu")
    f, size = sm.cfg.codec.factor, tile + (tiles - 1) * (tile - overlap)
    scene = SceneLayout(size, size, f, sm.cfg.tile_multiple, tile, overlap)
    with tempfile.TemporaryDirectory() as d:
        canvas = MemmapCanvas(d)
        eps = {m: noise_canvas(canvas, f"{m}_eps0", seed, modality_salt(m), sm.cfg.latent_channels(m),
                               scene.latent_shape) for m in ("rgb", "sar")}
        final = canvas.array("final", eps["rgb"].shape)
        one = SceneLayout(tile, tile, f, sm.cfg.tile_multiple, tile, 0)
        th, tw = scene.tile_lat
        for t in scene.tiles():
            ly, lx = t.y // f, t.x // f
            init = {m: canvas.array(f"{m}_tile", (e.shape[0], th, tw)) for m, e in eps.items()}
            for m in init:
                init[m][:] = eps[m][:, ly : ly + th, lx : lx + tw]
            out = sample_scene(sm, one, init, {}, SamplingOptions(steps=steps), seed, 10.0, 1, canvas)
            final[:, ly : ly + th, lx : lx + tw] += np.asarray(out["rgb"]) * t.weight_lat
        pixels = decode_canvas(sm, scene, "rgb", final, canvas, 4)
        rgb = np.asarray(pixels)[:, :size, :size].round()
        return seam_ratio(rgb, tile, overlap), seam_ratio(rgb, tile, overlap, zones=True)


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
        print("| case | seed | size (px) | rgb ratio | sar ratio | rgb overlap-zone ratio | seconds |\n"
              "|---|---|---|---|---|---|---|")
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, ov in (("joint, latent blending", overlap), ("joint, no overlap (control)", 0)):
                rgb, sar, sec, w, zone = _joint(model, tmp / "j", args.tile, ov, args.tiles, args.steps, seed)
                print(f"| {name} | {seed} | {w} | {rgb:.3f} | {sar:.3f} | {zone:.3f} | {sec:.2f} |")
            t0 = time.perf_counter()
            rgb, zone = _final_only(model, tmp, args.tile, overlap, args.tiles, args.steps, seed)
            size = args.tile + (args.tiles - 1) * (args.tile - overlap)
            print(f"| joint, tiles blended only at the end (ablation) | {seed} | {size} | {rgb:.3f} | - | {zone:.3f} | "
                  f"{time.perf_counter() - t0:.2f} |")
        sar_in = SHARED / BEN_MM / "s1_vvvh_db.tif"
        if sar_in.is_file():
            t0 = time.perf_counter()
            r = run_cli(["translate", sar_in, "--from", "sar", "--to", "rgb", "-m", model, "-o", tmp / "t.tif",
                         "--tile", args.tile, "--overlap", overlap, "-q"])
            if r.exit_code:
                raise SystemExit(r.stderr)
            with rasterio.open(tmp / "t.tif") as t:
                ratio = seam_ratio(t.read(), args.tile, overlap)
            print(f"| translate sar->rgb (real S1) | 0 | 120 | {ratio:.3f} | - | - | {time.perf_counter() - t0:.2f} |")


if __name__ == "__main__":
    main()

"""How much `--batch-size` changes a translation: every forward pass holds exactly `--batch-size`
tiles, so one batch size is bit-reproducible, and another runs the same arithmetic in other BLAS
blocks (float rounding only). This measures how large that is for the default model on the real
BigEarthNet-MM scenes (120 x 120 px, 25 tiles of 32 px, 8 steps), against the CPU default of 4:

- in the written files (uint16 rgb/nir): the largest |difference| in DN and the share of pixels
  that differ;
- in the translator's float output before casting: the largest |difference| in model space
  (the checkpoint's normalisation, low..high -> -1..1) as a fraction of that range.

Usage: python benchmarks/batch_size.py [--model default] [--sizes 1,16] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from earthgen_cli.inference.scene_translate import OutputOptions, SourceSpec, TileOptions, translate_scene
from earthgen_cli.inference.loader import load_translator
from earthgen_cli.inference.translator import TileBatch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "bigearthnet_mm"
DIRECTIONS = (("s1_vvvh_db.tif", "sar", "rgb"), ("s2_rgb.tif", "rgb", "nir"))
REFERENCE = 4  # the CPU default


def _file(model: str, src: Path, source: str, target: str, bs: int, out: Path, device: str) -> np.ndarray:
    tr = load_translator(model, device=device, batch_size=bs)
    translate_scene([SourceSpec(str(src), source)], target, tr, TileOptions(tile=32, overlap=8, seed=0),
                    OutputOptions(str(out), overwrite=True))
    with rasterio.open(out) as ds:
        return ds.read().astype(np.int64)


def _floats(model: str, scenes: list[Path], source: str, target: str, bs: int, device: str) -> np.ndarray:
    """The translator's raw float output for the top-left 32 px tile of every scene, in one call."""
    tiles = []
    for scene in scenes:
        with rasterio.open(scene) as ds:
            tiles.append(ds.read(window=((0, 32), (0, 32))).astype(np.float32))
    batch = TileBatch({source: np.stack(tiles)}, np.ones((len(tiles), 32, 32), bool),
                      tuple((0, 32 * k) for k in range(len(tiles))), gsd=10.0, seed=0)
    tr = load_translator(model, device=device, batch_size=bs)
    return tr.translate(batch, target).astype(np.float64), tr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--sizes", default="1,16")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    scenes = sorted(p for p in SHARED.iterdir() if p.is_dir())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, source, target in DIRECTIONS:
            key = f"{source}->{target}"
            files = {bs: [_file(args.model, s / name, source, target, bs, Path(tmp) / f"{k}_{bs}.tif", args.device)
                          for k, s in enumerate(scenes)] for bs in [REFERENCE, *sizes]}
            ref, tr = _floats(args.model, [s / name for s in scenes], source, target, REFERENCE, args.device)
            scaling = tr.info.scaling[target]
            row = {}
            for bs in sizes:
                diff = np.concatenate([np.abs(a - b).ravel() for a, b in zip(files[bs], files[REFERENCE])])
                floats, _ = _floats(args.model, [s / name for s in scenes], source, target, bs, args.device)
                rel = np.abs(scaling.to_model(floats) - scaling.to_model(ref)) / 2.0
                row[bs] = {"max_dn": int(diff.max()), "pixels_differing": float((diff > 0).mean()),
                           "max_float_rel": float(rel.max())}
                print(f"{key} batch {bs:2d} vs {REFERENCE}: max |diff| {row[bs]['max_dn']} DN, "
                      f"{100 * row[bs]['pixels_differing']:.3f} % of values differ; float output "
                      f"max |diff| {row[bs]['max_float_rel']:.2e} of the range", flush=True)
            results[key] = row
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

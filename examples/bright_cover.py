"""Share of bright pixels (Sentinel-2 blue reflectance > 0.2) in every `s2_rgb.tif` under a folder.

The data README's manifest flags a scene "snow or cloud covers >15%"; this measures that rule from the
pixels, to find snow- or cloud-covered scenes the manifest misses (configs/datasets/sample.yaml flags
them). Blue is band 3 of s2_rgb.tif, uint16 reflectance x10000; zeros are nodata.

    python examples/bright_cover.py ../shared/data            # scenes above 5 %, sorted by path
    python examples/bright_cover.py ../shared/data --above 0.15
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import rasterio


def bright_share(path: Path, threshold: int = 2000) -> float:
    with rasterio.open(path) as src:
        blue = src.read(3)
    valid = blue > 0
    return float((blue[valid] > threshold).mean()) if valid.any() else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--above", type=float, default=0.05, help="list scenes above this share (default 0.05)")
    args = ap.parse_args()
    if not args.root.is_dir():
        print(f"error: {args.root}: not a folder", file=sys.stderr)
        return 2
    for path in sorted(args.root.rglob("s2_rgb.tif")):
        share = bright_share(path)
        if share > args.above:
            print(f"{share:.2f}  {path.parent.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

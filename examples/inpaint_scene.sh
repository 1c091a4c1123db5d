#!/usr/bin/env bash
# Cut a square "cloud" out of a real Sentinel-2 RGB scene and fill it with the default model, once
# per --fill: blend (the default), coherence (edges and lines run on across the hole) and harmonic
# (the smoothest surface); each output says which fill made it (EARTHGEN_FILL).
# Usage: examples/inpaint_scene.sh [SCENE_RGB.tif] [OUT_DIR] [ROW0:ROW1,COL0:COL1]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scene="${1:-$here/../../shared/data/bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48/s2_rgb.tif}"
out="${2:-$(mktemp -d)}"
hole="${3:-40:64,40:64}"
mkdir -p "$out"

# the mask: a 1-band raster on the scene's grid, non-zero where pixels are to be regenerated
python - "$scene" "$out/mask.tif" "$hole" <<'PY'
import sys
import numpy as np
import rasterio
scene, mask_path, hole = sys.argv[1:]
(r0, r1), (c0, c1) = (map(int, part.split(":")) for part in hole.split(","))
with rasterio.open(scene) as src:
    profile = {**src.profile, "count": 1, "dtype": "uint8", "nodata": None}
    mask = np.zeros((1, src.height, src.width), np.uint8)
mask[0, r0:r1, c0:c1] = 1
with rasterio.open(mask_path, "w", **profile) as dst:
    dst.write(mask)
PY

for fill in blend coherence harmonic; do
  earthgen inpaint "$scene" --from rgb --mask "$out/mask.tif" --fill "$fill" -o "$out/filled_$fill.tif" --overwrite -q
  earthgen info "$out/filled_$fill.tif" | grep -E "EARTHGEN_(FILL|STEPS)"
done
echo "outputs in $out"

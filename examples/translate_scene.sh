#!/usr/bin/env bash
# Translate a real Sentinel-2 scene to a panchromatic band, inspect the result, and do the same
# through a shell pipeline (stdin -> stdout), as you would next to GDAL tools.
# Usage: examples/translate_scene.sh [SCENE.tif] [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scene="${1:-$here/../../shared/data/majortom_199U_1099R/s2_rgb.tif}"
out="${2:-$(mktemp -d)}"
mkdir -p "$out"

earthgen info "$scene"
earthgen translate "$scene" --from rgb --to pan --model luminance -o "$out/pan.tif" --overwrite --json
earthgen info "$out/pan.tif"

# stdin -> stdout: the output modality tag lets the next step skip --from
earthgen translate - --from rgb --to pan --model luminance -o - -q < "$scene" \
  | earthgen translate - --to pan --model identity --cog -o "$out/pan_cog.tif" --overwrite -q
earthgen info "$out/pan_cog.tif" --json
echo "outputs in $out"

#!/usr/bin/env bash
# Paired generation over a bounding box: RGB + SAR generated together for a real place, georeferenced.
# Usage: examples/joint_bbox.sh CHECKPOINT [OUT_DIR]   (a checkpoint trained on rgb+sar pairs)
set -euo pipefail
ckpt="${1:?usage: joint_bbox.sh CHECKPOINT [OUT_DIR]}"
out="${2:-$(mktemp -d)}"
size="${SMALL:+0.004}"; size="${size:-0.02}"
# a box in Bavaria (lon/lat); the output grid is its UTM zone at 10 m
w=11.30; s=48.10
e=$(python3 -c "print($w + $size)"); n=$(python3 -c "print($s + $size)")
# --tile: the crop side the checkpoint was trained on (larger tiles drift and show seams)
earthgen joint --pair rgb,sar --bbox "$w,$s,$e,$n" --gsd 10 -m "$ckpt" --steps 4 \
  -o "$out" --overwrite -q
earthgen info "$out/rgb.tif"
earthgen info "$out/sar.tif"

#!/usr/bin/env bash
# Your own data end to end: sample scenes -> dataset -> train (codec-free tiny model) -> evaluate -> translate.
# Usage: examples/train_and_evaluate.sh [WORK_DIR]     SMALL=1 for a one-minute smoke run (CI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d)}"
rm -rf "$work/run"  # a fresh training run each time (use --resume to continue one)
mkdir -p "$work"
steps=2000; eval_chips=64; chip=64
if [[ "${SMALL:-0}" == 1 ]]; then steps=30; eval_chips=4; chip=32; fi

earthgen sample-data "$work/samples" --no-osm --overwrite
earthgen build-dataset "$work/ds" --config "$work/samples/dataset.yaml" --chip "$chip" --split-by scene --test-frac 0.34 --val-frac 0 \
  --overwrite --quiet
earthgen info "$work/ds"

# configs/tiny.yaml is the test-size model; use configs/cpu-small.yaml (CPU, ~1 h) or gpu-base.yaml (GPU).
earthgen train --config "$here/../configs/tiny.yaml" --set data.root="$work/ds" --set optim.steps="$steps" \
  --set run.out_dir="$work/run" --set run.save_every="$steps" --set run.progress=false
ckpt="$(ls -d "$work"/run/checkpoints/step_* | tail -1)"
earthgen info "$ckpt"

earthgen evaluate --data "$work/ds" --model "$ckpt" --directions sar:rgb,rgb:nir --split test \
  --max-chips "$eval_chips" --no-fid --baselines mean,pixel-regression -o "$work/report" --overwrite --quiet
cat "$work/report/report.md"

scene="$(ls -d "$work"/samples/S2* | head -1)"
earthgen translate "$scene/s1_vvvh_db.tif" --from sar --to rgb --model "$ckpt" --tile 64 --overlap 16 \
  -o "$work/rgb_from_sar.tif" --preview "$work/rgb_from_sar.png" --overwrite -q
echo "outputs in $work"

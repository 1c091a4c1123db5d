"""Scene-engine throughput and memory with `--model identity` against a plain rasterio copy.

Writes tiled, DEFLATE-compressed RGB uint16 scenes of 1k^2, 4k^2 and 16k^2 pixels (real
Sentinel-2 texture from ../shared/data repeated, or smooth synthetic texture without it) into a
temporary folder, then for each size runs, each in its own process:
  - `earthgen translate IN --from rgb --to rgb --model identity` (the whole tiled engine), and
  - a plain rasterio block-by-block copy to an identically configured GeoTIFF,
and prints wall time, time per megapixel and the child's peak RSS (ru_maxrss from wait4).

Targets (issue 2): peak RSS of the largest scene within 1.25x of the smallest; engine time per
megapixel within 2.5x of the plain copy. Usage:
    python benchmarks/translate_pipeline.py [--sizes 1024,4096,16384] [--tile 512 --overlap 64]
    python benchmarks/translate_pipeline.py --model default --to nir --steps 4 --sizes 256,512,1024
(with a real model: its time is the model's, the copy is only a reference; memory is the point)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT.parent / "shared" / "data" / "majortom_199U_1099R" / "s2_rgb.tif"

COPY_SCRIPT = r"""
import sys, rasterio
src = rasterio.open(sys.argv[1])
profile = src.profile.copy()
profile.update(tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE", BIGTIFF="IF_SAFER",
               NUM_THREADS="ALL_CPUS")
with rasterio.Env(GDAL_CACHEMAX=48, GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(sys.argv[2], "w", **profile) as dst:
    for _, window in dst.block_windows(1):
        dst.write(src.read(window=window), window=window)
"""


def texture() -> np.ndarray:
    if SAMPLE.exists():
        with rasterio.open(SAMPLE) as src:
            return src.read()
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 64, 64)).cumsum(1).cumsum(2)
    base = np.kron(base, np.ones((1, 16, 16)))
    return ((base - base.min()) / np.ptp(base) * 3000).astype(np.uint16)


def write_scene(path: Path, size: int, tex: np.ndarray) -> None:
    th, tw = tex.shape[1:]
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint16", crs="EPSG:32633",
                   transform=from_origin(500000, 5000000, 10, 10), tiled=True, blockxsize=512,
                   blockysize=512, compress="DEFLATE", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    reps_x = -(-size // tw)
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, size, 512):
            h = min(512, size - y)
            rows = np.arange(y, y + h) % th
            strip = np.tile(tex[:, rows, :], (1, 1, reps_x))[:, :, :size]
            dst.write(strip, window=Window(0, y, size, h))


# The child reports its own peak from /proc/self/status (VmHWM belongs to the exec'd process
# alone; getrusage's ru_maxrss would also count the parent's memory at fork time).
PEAK_WRAPPER = r"""
import atexit, runpy, sys
def report():
    with open("/proc/self/status") as fh:
        hwm = next(line for line in fh if line.startswith("VmHWM:"))
    sys.stderr.write("PEAK_KB " + hwm.split()[1] + "\n")
atexit.register(report)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target == "earthgen":
    from earthgen_cli.cli.app import main
    main()
else:
    runpy.run_path(target, run_name="__main__")
"""


def run_child(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process; args[0] is 'earthgen' or a script."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_KB ")]
    if proc.returncode != 0 or not peak:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stderr}")
    return wall, int(peak[-1].split()[1]) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,4096,16384")
    ap.add_argument("--tile", type=int, default=None, help="default: the model's (identity: 512)")
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--model", default="identity", help="identity, default or a checkpoint directory")
    ap.add_argument("--to", default="rgb", help="target modality")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (checkpoint models)")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tex = texture()
    results = []
    with tempfile.TemporaryDirectory(prefix="earthgen-bench-") as tmp:
        copy_script = Path(tmp) / "plain_copy.py"
        copy_script.write_text(COPY_SCRIPT)
        for size in sizes:
            src = Path(tmp) / f"scene{size}.tif"
            write_scene(src, size, tex)
            out, copy = Path(tmp) / f"out{size}.tif", Path(tmp) / f"copy{size}.tif"
            extra = [*(["--tile", str(args.tile)] if args.tile else []),
                     *(["--overlap", str(args.overlap)] if args.overlap is not None else []),
                     *(["--steps", str(args.steps)] if args.steps else [])]
            eg_s, eg_rss = run_child(["earthgen", "translate", str(src), "--from", "rgb", "--to", args.to,
                                      "--model", args.model, *extra, "-o", str(out), "-q"])
            cp_s, cp_rss = run_child([str(copy_script), str(src), str(copy)])
            mp = size * size / 1e6
            row = dict(size=size, megapixels=round(mp, 1), earthgen_s=round(eg_s, 2), copy_s=round(cp_s, 2),
                       earthgen_s_per_mp=round(eg_s / mp, 4), copy_s_per_mp=round(cp_s / mp, 4),
                       time_ratio=round(eg_s / cp_s, 2), earthgen_rss_mib=round(eg_rss, 1),
                       copy_rss_mib=round(cp_rss, 1))
            results.append(row)
            print(f"{size:>6}^2  {mp:7.1f} MP  earthgen {eg_s:7.2f} s ({eg_s / mp:.4f} s/MP, peak RSS {eg_rss:6.1f} MiB)"
                  f"   copy {cp_s:7.2f} s ({cp_s / mp:.4f} s/MP, {cp_rss:6.1f} MiB)   time ratio {eg_s / cp_s:.2f}",
                  flush=True)
            for p in (src, out, copy):
                p.unlink(missing_ok=True)
    rss_ratio = results[-1]["earthgen_rss_mib"] / results[0]["earthgen_rss_mib"]
    worst_time = max(r["time_ratio"] for r in results)
    print(f"peak RSS largest/smallest: {rss_ratio:.2f}x (target <= 1.25x)  "
          f"{'OK' if rss_ratio <= 1.25 else 'MISSED'}")
    print(f"worst time per MP vs plain copy: {worst_time:.2f}x (target <= 2.5x)  "
          f"{'OK' if worst_time <= 2.5 else 'MISSED'}")
    if args.json:
        print(json.dumps({"rows": results, "rss_ratio": round(rss_ratio, 3), "worst_time_ratio": worst_time}))


if __name__ == "__main__":
    main()

"""Throughput of `build-dataset`: chips/s with 1 and 2 dask workers, and peak RSS.

    python benchmarks/build_dataset.py [--config configs/datasets/sample.yaml] [--chip 64]
                                       [--data-root ../shared/data] [--workers 1 2] [--repeat 3]

Each run builds into a fresh temporary folder in its own process, so its peak RSS
(ru_maxrss) is its own. chips/s counts kept chips over the parallel extraction phase (reading,
aligning, filtering, writing); `total s` includes planning and metadata. With --repeat N the
worker counts alternate N times (a busy neighbour then slows both alike) and the medians and the
speed-up of each worker count over the first are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(args) -> None:
    sys.path.insert(0, str(ROOT))
    from earthgen_cli.io.dataset_build import BuildOptions, build_dataset
    from earthgen_cli.io.dataset_config import load_dataset_config

    cfg = load_dataset_config(args.config, args.data_root)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = build_dataset(cfg, Path(tmp) / "ds", BuildOptions(
            chip=args.chip, workers=args.workers[0], progress=False))
        total = time.perf_counter() - t0
    print(json.dumps({"workers": args.workers[0], "chips": report.chips, "scenes": report.scenes,
                      "extract_s": report.seconds_extract, "total_s": total,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "datasets" / "sample.yaml"))
    p.add_argument("--data-root", default=None)
    p.add_argument("--chip", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=1, help="alternate the worker counts this many times")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one_run(args)
    print(f"config {args.config}, chip {args.chip}, cpus {os.cpu_count()}")
    print(f"{'workers':>7} {'chips':>6} {'extract s':>9} {'chips/s':>8} {'total s':>8} {'peak RSS MiB':>12}")
    runs: dict[int, list[float]] = {n: [] for n in args.workers}
    for _ in range(args.repeat):
        for n in args.workers:
            cmd = [sys.executable, __file__, "--one", "--config", args.config, "--chip", str(args.chip),
                   "--workers", str(n)] + (["--data-root", args.data_root] if args.data_root else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            runs[n].append(r["chips"] / r["extract_s"])
            print(f"{n:>7} {r['chips']:>6} {r['extract_s']:>9.2f} {r['chips'] / r['extract_s']:>8.1f} "
                  f"{r['total_s']:>8.2f} {r['peak_rss_mib']:>12.0f}")
    base = statistics.median(runs[args.workers[0]])
    for n in args.workers:
        med = statistics.median(runs[n])
        print(f"median chips/s with {n} worker(s): {med:.1f} ({med / base:.2f}x {args.workers[0]} worker(s))")


if __name__ == "__main__":
    main()

"""Peak memory of the Python API on dask-backed scenes: `earthgen_cli.translate(da, output=...)` on a
lazily generated (band, y, x) DataArray of 1k^2 and 4k^2 px, each in a fresh process (ru_maxrss).

    python benchmarks/api_memory.py [--sides 1024 4096] [--model luminance] [--chunk 512]

The input is never computed whole (rio.to_raster writes it chunk by chunk) and the engine streams by
tiles, so peak RSS should hardly grow with the scene; the ratio 4k^2 / 1k^2 is printed (target <= 1.25).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(side: int, model: str, chunk: int) -> None:
    import dask.array as dsa
    import rioxarray  # noqa: F401
    import xarray as xr
    from affine import Affine

    import earthgen_cli as eg

    data = dsa.random.default_rng(0).integers(1, 4000, (3, side, side), chunks=(3, chunk, chunk)).astype("uint16")
    da = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": [1, 2, 3]})
    da = da.rio.write_crs("EPSG:32633").rio.write_transform(Affine(10, 0, 500000, 0, -10, 4650000))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = eg.translate(da, to="pan", source="rgb", model=model, output=str(Path(tmp) / "pan.tif"))
        assert out.shape == (1, side, side)
        seconds = time.perf_counter() - t0
    print(json.dumps({"side": side, "seconds": round(seconds, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--model", default="luminance")
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one(args.one, args.model, args.chunk)
    rows = []
    for side in args.sides:
        cmd = [sys.executable, __file__, "--one", str(side), "--model", args.model, "--chunk", str(args.chunk)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['side']:>5}^2 px: {r['seconds']:>6.1f} s, peak RSS {r['peak_rss_mib']:>7.1f} MiB", flush=True)
    print(f"peak RSS ratio {rows[-1]['side']}^2 / {rows[0]['side']}^2: "
          f"{rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()

"""Many small scenes through `earthgen translate IN... -o DIR`: wall time with 1 and 2 local worker
processes (each loads the model once), and a check that the outputs are identical.

    python benchmarks/translate_many.py [--scenes 24] [--model default] [--estimate mean] [--workers 1 2]

The scenes are the BigEarthNet S1+S2 RGB scenes of ../shared/data (120 x 120 px, repeated to
--scenes); run it on an idle machine: it measures wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("EARTHGEN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=24)
    p.add_argument("--model", default="default")
    p.add_argument("--estimate", default="mean")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    found = sorted((DATA / "bigearthnet_mm").glob("*/s2_rgb.tif"))
    if not found:
        sys.exit(f"no scenes under {DATA / 'bigearthnet_mm'}")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for i in range(args.scenes):
            dst = Path(tmp) / "in" / f"scene{i:03d}.tif"
            dst.parent.mkdir(exist_ok=True)
            shutil.copy(found[i % len(found)], dst)
            inputs.append(str(dst))
        print(f"{args.scenes} scenes of 120 x 120 px, model {args.model}, estimate {args.estimate}, "
              f"cpus {os.cpu_count()}")
        print(f"{'workers':>7} {'wall s':>8} {'scenes/s':>9} {'speed-up':>9}")
        base, digests = None, {}
        for n in args.workers:
            out = Path(tmp) / f"out{n}"
            cmd = [sys.executable, "-m", "earthgen_cli", "translate", *inputs, "--to", "nir", "--model", args.model,
                   "--estimate", args.estimate, "-q", "-o", str(out), "--workers", str(n)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            wall = time.perf_counter() - t0
            base = base or wall
            digests[n] = hashlib.sha256(b"".join(
                hashlib.sha256(f.read_bytes()).digest() for f in sorted(out.iterdir()))).hexdigest()
            print(f"{n:>7} {wall:>8.1f} {args.scenes / wall:>9.2f} {base / wall:>8.2f}x")
        print("outputs identical across worker counts:", len(set(digests.values())) == 1)


if __name__ == "__main__":
    main()

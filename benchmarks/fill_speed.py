"""Milliseconds per tile of each classical fill `inpaint --fill` can start from.

    python benchmarks/fill_speed.py [--tiles 64 128 256] [--bands 3] [--repeat 3]

`models.earthgen.guided_fill` (what a context-fill model's path computes for each tile at every
step, at pixel resolution) on one tile of a smooth random image with a centred square hole half
the tile's side, unguided, for `harmonic`, `coherence` and `blend`, on the CPU threads torch has.
The harmonic fill is a fixed number of sweeps per level; coherence transport takes one pass per
ring of the hole (the hole's half side), each over that ring's pixels and a 5 px neighbourhood,
so its cost grows with the hole as well as the tile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from earthgen_cli.inference.multidiffusion import FILLS  # noqa: E402
from earthgen_cli.models.earthgen import guided_fill  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", nargs="+", type=int, default=[64, 128, 256])
    ap.add_argument("--bands", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch threads {torch.get_num_threads()}, {args.bands} bands, hole = half the tile's side")
    for side in args.tiles:
        z = torch.nn.functional.avg_pool2d(torch.randn(1, args.bands, side + 4, side + 4), 5, 1)
        known = torch.ones(1, 1, side, side)
        lo = side // 4
        known[..., lo : lo + side // 2, lo : lo + side // 2] = 0
        row = []
        for method in FILLS:
            guided_fill(z, known, method=method)  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                guided_fill(z, known, method=method)
            row.append(f"{method} {1000 * (time.perf_counter() - t0) / args.repeat:7.1f} ms")
        print(f"tile {side:4d} px, hole {side // 2:3d} px: " + " | ".join(row))


if __name__ == "__main__":
    main()

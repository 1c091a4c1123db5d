"""Seconds per 256x256 tile of `earthgen translate --model CKPT` (sar -> rgb) against sampling
steps (1, 4, 8, 32) for a preset (default cpu-small), through the real ModelTranslator: codec
encode, the sampler with guidance off/on, the adapter, decode and de-normalisation.

The checkpoint is built from freshly initialised weights (speed does not depend on what the
weights learnt) and saved/loaded like any other. Usage:
    python benchmarks/sample_speed.py [--preset cpu-small] [--tile 256] [--steps 1,4,8,32]
                                      [--precision fp32|bf16] [--guidance 1.0] [--batch 1]
    python benchmarks/sample_speed.py --model default --tile 32 --batch 16   # a real checkpoint
    python benchmarks/sample_speed.py --device cuda --precision bf16 --batch 16    # on a GPU

Besides seconds per tile it reports tiles/s and the achieved FLOP/s (the translate call's FLOPs
counted by torch.utils.flop_counter) against the device's matmul peak measured here (a 4096^2
matmul in the same precision), so a number says how busy the device was.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.translator import TileBatch
from earthgen_cli.modalities import default_scaling
from earthgen_cli.models.config import model_config
from earthgen_cli.models.earthgen import EarthGenModel
from earthgen_cli import checkpoint as ck


def make_checkpoint(preset: str, path: Path) -> Path:
    bands = {"rgb": 3, "sar": 2}
    cfg = model_config(preset, tuple(bands), bands)
    torch.manual_seed(0)
    model = EarthGenModel(cfg)
    info = ck.CheckpointInfo(cfg, {m: default_scaling(m, n) for m, n in bands.items()},
                             {m: model.codecs[m].latent_stats() for m in bands}, {}, "flow", 0, {})
    return ck.save_checkpoint(path, info, model, model)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    """FLOP/s of a square matmul on `device` in `dtype`: the practical peak a model can approach."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--steps", default="1,4,8,32")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--model", default=None, help="a checkpoint directory, or default (the shipped model)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    args = ap.parse_args()
    device = torch.device(args.device)
    peak = matmul_peak(device, torch.bfloat16 if args.precision == "bf16" else torch.float32,
                       n=2048 if device.type == "cpu" else 4096)
    print(f"{device} matmul peak ({args.precision}): {peak / 1e9:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            path = make_checkpoint(args.preset, Path(tmp) / "ckpt")
        else:
            from earthgen_cli.inference.default_model import require_default_model

            path = require_default_model() if args.model == "default" else Path(args.model)
            args.preset = ck.read_info(path).model.preset
        rng = np.random.default_rng(0)
        n, t = args.batch, args.tile
        batch = TileBatch({"sar": rng.uniform(-25, 0, (n, 2, t, t)).astype(np.float32)}, np.ones((n, t, t), bool),
                          tuple((0, t * i) for i in range(n)), gsd=10.0, seed=0)
        results = {"preset": args.preset, "tile": t, "precision": args.precision, "guidance": args.guidance,
                   "threads": torch.get_num_threads(), "device": str(device), "matmul_peak_gflops": round(peak / 1e9, 1),
                   "seconds_per_tile": {}, "tiles_per_s": {}, "achieved_gflops": {}, "fraction_of_peak": {}}
        for steps in (int(s) for s in args.steps.split(",")):
            tr = ModelTranslator.load(path, device=args.device, steps=steps, guidance=args.guidance,
                                      precision=args.precision, batch_size=n)
            tr.translate(TileBatch({"sar": batch.sources["sar"][:, :, :32, :32]}, batch.valid[:, :32, :32],
                                   batch.origins, 10.0), "rgb")  # warm-up
            t0 = time.perf_counter()
            tr.translate(batch, "rgb")  # returns numpy: the device has finished
            sec = (time.perf_counter() - t0) / n
            flops = count_flops(lambda: tr.translate(batch, "rgb")) / n
            achieved = flops / sec
            results["seconds_per_tile"][steps] = round(sec, 4)
            results["tiles_per_s"][steps] = round(1 / sec, 2)
            results["achieved_gflops"][steps] = round(achieved / 1e9, 2)
            results["fraction_of_peak"][steps] = round(achieved / peak, 3)
            print(f"steps {steps:3d}: {sec:.3f} s per {t}x{t} tile, {1 / sec:.2f} tiles/s, "
                  f"{achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.0%} of the matmul peak", flush=True)
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Training throughput of the `cpu-small` preset: samples/s and achieved FLOP/s in fp32 and bf16
autocast as a fraction of this machine's matmul peak (measured in the same run), and 1 vs 2
process torchrun throughput.

Builds a real dataset from ../shared/data (BigEarthNet-MM rgb, nir, sar as 64 px chips), trains the
cpu-small KL codecs for a couple of steps (the flow stage needs a codec checkpoint; codec quality
does not change the flow model's speed), then times `earthgen train` runs of the flow stage, each in
its own process. FLOPs per sample come from torch's FlopCounterMode on one forward+backward of the
same objective. Usage:
    python benchmarks/train_throughput.py [--steps 30] [--batch-size 16] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DATASET_YAML = ROOT / "configs" / "datasets" / "bigearthnet-mm.yaml"


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def run(cmd: list[str], env: dict) -> None:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def samples_per_s(out: Path) -> float:
    """The second logged interval: the first one includes start-up and warm-up."""
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [r["samples_per_s"] for r in log if "samples_per_s" in r][-1]


def flops_per_sample(cfg_path: Path, sets: list[str]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from earthgen_cli.train.config import load_train_config
    from earthgen_cli.train.distributed import DistEnv
    from earthgen_cli.train.loop import Trainer, step_generator

    cfg = load_train_config(cfg_path, sets)
    trainer = Trainer(cfg, str(cfg_path), DistEnv(), torch.device("cpu"))
    it = trainer.loader(0, 1, cfg.run.seed, 0, 1)
    g = step_generator(cfg.run.seed, 0, 0, 0)
    batch = trainer.prepare(next(it), g)
    with FlopCounterMode(display=False) as counter:
        trainer.losses(batch, g)["loss"].backward()
    return counter.get_total_flops() / batch.size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads per process (1: OpenMP barriers stall badly on a shared machine)")
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="earthgen-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    threads = args.threads
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    py = sys.executable
    torch.set_num_threads(threads)

    data = work / "bemm64"
    if not (data / "dataset.json").is_file():
        run([py, "-m", "earthgen_cli", "build-dataset", str(data), "--config", str(DATASET_YAML),
             "--data-root", str(SHARED), "--chip", "64", "--quiet"], env)
    cfg = ROOT / "configs" / "cpu-small.yaml"
    base = ["--set", f"data.root={data}", "--set", f"optim.batch_size={args.batch_size}"]
    codec = work / "codec"
    if not (codec / "checkpoints" / "step_000002").is_dir():
        run([py, "-m", "earthgen_cli", "train", "--config", str(cfg), *base, "--set", "stage=codec",
             "--set", "optim.steps=2", "--set", f"run={{out_dir: {codec}, save_every: 2, progress: false}}"], env)
    flow = base + ["--set", f"flow.codec_from={codec / 'checkpoints' / 'step_000002'}",
                   "--set", f"optim.steps={args.steps}"]
    half = max(1, args.steps // 2)

    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    fps = flops_per_sample(cfg, [s for s in flow if s != "--set"])
    # The peak is per process (at `threads` threads); n processes are compared with n x that peak.
    results = {"threads_per_process": threads,
               "matmul_peak_gflops_per_process": {k: round(v / 1e9, 1) for k, v in peak.items()},
               "train_gflop_per_sample": round(fps / 1e9, 3), "runs": {}}
    for name, nproc, precision in (("1proc-fp32", 1, "fp32"), ("1proc-bf16", 1, "bf16"), ("2proc-bf16", 2, "bf16")):
        out = work / name
        sets = flow + ["--set", f"optim.precision={precision}",
                       "--set", f"run={{out_dir: {out}, log_every: {half}, save_every: {args.steps * 10}, progress: false}}"]
        launcher = [py, "-m", "earthgen_cli"] if nproc == 1 else \
            [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "earthgen_cli"]
        subprocess.run(["rm", "-rf", str(out)])
        run([*launcher, "train", "--config", str(cfg), *sets], env)
        sps = samples_per_s(out)
        achieved = sps * fps
        results["runs"][name] = {"samples_per_s": sps, "achieved_gflops": round(achieved / 1e9, 2),
                                 "fraction_of_matmul_peak": round(achieved / (nproc * peak[precision]), 3)}
        print(name, results["runs"][name], flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""torchrun detection (nanoGPT style): RANK/WORLD_SIZE/LOCAL_RANK in the environment mean DDP;
gloo on CPU, nccl on CUDA. Without them the same code runs as a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from earthgen_cli.errors import EarthgenError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def pick_train_device(device: str, env: DistEnv) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # one GPU per process
        if not torch.cuda.is_available():
            raise EarthgenError("run.device is cuda but CUDA is not available")
        device = f"cuda:{env.local_rank}"
    try:
        return torch.device(device)
    except RuntimeError:
        raise EarthgenError(f"run.device {device!r} is not a torch device") from None


def init_distributed(device: str) -> tuple[DistEnv, torch.device]:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        env = DistEnv()
        return env, pick_train_device(device, env)
    env = DistEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    dev = pick_train_device(device, env)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return env, dev


def mean_over_ranks(values: dict[str, float], env: DistEnv, device: torch.device) -> dict[str, float]:
    """The logged numbers are means over all processes, not rank 0's alone."""
    if not env.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / env.world for k, v in zip(keys, t.tolist())}


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()

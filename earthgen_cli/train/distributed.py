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


def per_rank(value: float, env: DistEnv, device: torch.device) -> list[float]:
    """`value` from every rank, in rank order (for the log: the spread behind a mean)."""
    if not env.enabled:
        return [value]
    out = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(env.world)]
    dist.all_gather(out, torch.tensor([value], dtype=torch.float64, device=device))
    return [float(t) for t in out]


def weights_digest(module: torch.nn.Module) -> int:
    """A 63-bit digest of every parameter's bytes: equal on all ranks iff their weights are identical."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    for p in module.parameters():
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(h.digest(), "little") >> 1


def check_ranks_identical(module: torch.nn.Module, env: DistEnv, device: torch.device) -> bool:
    """DDP keeps replicas identical by construction; verify it (a diverged rank is a silent bug)."""
    if not env.enabled:
        return True
    mine = torch.tensor([weights_digest(module)], dtype=torch.int64, device=device)
    out = [torch.zeros_like(mine) for _ in range(env.world)]
    dist.all_gather(out, mine)
    return all(int(t) == int(mine) for t in out)


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()

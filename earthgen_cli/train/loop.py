"""`earthgen train`: one entry point for the codec and flow stages, alone or under torchrun.

nanoGPT's shape: torchrun detection, seed + rank, one autocast context, gradient accumulation
(`no_sync` on all but the last micro-step), a master process that logs and saves; DiT's EMA. All
randomness of a step (data, crops, times, noise) comes from generators seeded by
(seed, step, micro-step, rank), so `--resume` from step s reproduces exactly the run that was not
interrupted: same batches, same noise, same optimizer state.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.scratch import make_folder
from earthgen_cli.modalities import default_scaling
from earthgen_cli.models.earthgen import DIRECT_PARTS, EarthGenModel
from earthgen_cli.seeds import derive_seed, sampler_seed, seeded_init
from earthgen_cli.strict_config import to_mapping
from earthgen_cli import checkpoint as ck
from earthgen_cli.train.batches import Batch, ChipSubset, collate, crop_and_augment, pseudo_pan
from earthgen_cli.train.config import Precision, Stage, TrainConfig, build_model_config
from earthgen_cli.train.distributed import (DistEnv, check_ranks_identical, init_distributed, mean_over_ranks,
                                            per_rank, shutdown)
from earthgen_cli.train.run_folder import Echo, RunLog, check_run_dir, truncate_log
from earthgen_cli.train.stages import make_stage


def step_generator(seed: int, step: int, micro: int, rank: int, salt: str = "") -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, step, micro, rank, salt))


def lr_at(step: int, cfg: TrainConfig) -> float:
    o = cfg.optim
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    frac = (step - o.warmup) / max(1, o.steps - o.warmup)
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    if precision is Precision.bf16:
        return torch.bfloat16
    if precision is Precision.auto and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def open_dataset(cfg: TrainConfig):
    from earthgen_cli.data.chips import ChipDataset

    ds = ChipDataset(cfg.data.root, cfg.data.split, cfg.data.modalities or None, in_memory=cfg.data.in_memory)
    if len(ds) == 0:
        raise EarthgenError(f"{cfg.data.root}: split {cfg.data.split!r} has no chips")
    if cfg.data.max_chips or cfg.data.exclude_flags:
        return ChipSubset(ds, cfg.data.max_chips, cfg.data.exclude_flags)
    return ds


def param_groups(model: torch.nn.Module, params: list[torch.nn.Parameter], direct_lr_mult: float) -> list[dict]:
    """The optimizer's groups: every trainable parameter at the base rate, except the direct
    source-to-target parts (`DIRECT_PARTS`) at `direct_lr_mult` times it (one group when 1)."""
    wanted = {id(p) for p in params}
    direct = [p for n, p in model.named_parameters() if id(p) in wanted and n.startswith(tuple(DIRECT_PARTS.values()))]
    if direct_lr_mult == 1.0 or not direct:
        return [{"params": params, "lr_mult": 1.0}]
    ids = {id(p) for p in direct}
    return [{"params": [p for p in params if id(p) not in ids], "lr_mult": 1.0},
            {"params": direct, "lr_mult": direct_lr_mult}]


def _check_crop(crop: int, chip: int, multiple: int, where: str) -> None:
    """data.crop must fit the dataset's chips and sit on the model's grid (codec factor x patch);
    0 trains on whole chips, whose side must then be on that grid."""
    crop = crop or chip
    if crop > chip:
        raise EarthgenError(f"{where}: data.crop {crop} is larger than the dataset's {chip}x{chip} chips")
    if crop < multiple or crop % multiple:
        raise EarthgenError(f"{where}: data.crop {crop} is not a multiple of {multiple} (this model's codec factor x "
                            f"patch); try {max(multiple, crop // multiple * multiple)}")


@dataclasses.dataclass
class LogWindow:
    """Loss sums and throughput since the last log record."""

    sums: dict[str, float] = dataclasses.field(default_factory=dict)
    steps: int = 0
    samples: int = 0
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, result: dict[str, torch.Tensor], samples: int, accum: int) -> None:
        for k, v in result.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach()) / accum
        self.samples += samples


class Trainer:
    def __init__(self, cfg: TrainConfig, config_path: str, env: DistEnv, device: torch.device) -> None:
        self.cfg, self.where, self.env, self.device = cfg, config_path, env, device
        self.data = open_dataset(cfg)
        from earthgen_cli.data.chips import pair_index

        self.pairs = list(pair_index(self.data, cfg.data.pairs, config_path))  # data.pairs, else every pair
        mods, bands = list(self.data.modalities), dict(self.data.bands)
        self.scaling = {m: self.data.scaling[m] for m in mods}
        self.use_pseudo_pan = cfg.data.pseudo_pan > 0 and "rgb" in mods
        if self.use_pseudo_pan and "pan" not in mods:
            mods.append("pan")
            bands["pan"] = 1
            self.scaling["pan"] = default_scaling("pan", 1)
        self.stage = make_stage(cfg, config_path, self.data, self.scaling)
        mcfg = build_model_config(cfg, tuple(mods), {m: bands[m] for m in mods}, config_path)
        _check_crop(cfg.data.crop, self.data.chip, mcfg.tile_multiple, config_path)
        with seeded_init(cfg.run.seed):  # the same initial weights on every rank (DDP broadcasts too)
            self.model = EarthGenModel(mcfg)
        self.latent_stats = self.stage.start(self.model, self.fixed_batches)
        self.params = self.stage.trainable_parameters(self.model)
        objective = self.stage.objective(self.model)
        self.model.to(device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        o = cfg.optim
        self.opt = torch.optim.AdamW(param_groups(self.model, self.params, o.direct_lr_mult), lr=o.lr,
                                     betas=o.betas, weight_decay=o.weight_decay)
        self.pair_keys = sorted("+".join(sorted(p)) for p in self.pairs)
        if self.use_pseudo_pan:
            self.pair_keys = sorted(set(self.pair_keys) | {"+".join(sorted(("rgb", "pan")))})
        # pairs_seen is what the weights have seen in every stage (inference refuses a pair the
        # model never saw), so a run from flow.init_from carries on that checkpoint's count
        self.pairs_base = dict(self.stage.pairs_seen)
        self.pair_counts = torch.zeros(len(self.pair_keys), dtype=torch.float64)
        self.out = Path(cfg.run.out_dir)
        self.ckdir = self.out / "checkpoints"
        self.objective = objective
        if env.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # Routed FFN branches and absent modalities leave parameters unused in a batch.
            self.objective = DDP(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                 find_unused_parameters=True)
        self.autocast = autocast_dtype(o.precision, device)

    # -- state ------------------------------------------------------------------------------
    def resume(self) -> int:
        latest = ck.newest_checkpoint(self.ckdir)
        if latest is None:
            raise EarthgenError(f"{self.ckdir}: no complete checkpoint to resume from")
        info = ck.read_info(latest)
        if info.model != self.model.cfg or info.stage != self.cfg.stage.value:
            raise EarthgenError(f"{latest}: its model or stage differs from {self.where}; cannot resume")
        state = ck.load_into(latest, self.model, self.ema)
        if len(state["optimizer"]["param_groups"]) != len(self.opt.param_groups):
            raise EarthgenError(f"{latest}: its optimizer has {len(state['optimizer']['param_groups'])} parameter "
                                f"group(s), {self.where} {len(self.opt.param_groups)} (optim.direct_lr_mult "
                                f"changed?); cannot resume")
        self.opt.load_state_dict(state["optimizer"])
        self.pairs_base = {k: int(v) for k, v in state["pairs_seen"].items()}  # init_from's included
        self.latent_stats = info.latent_stats
        for m, s in self.latent_stats.items():
            self.model.codecs[m].set_latent_stats(s["shift"], s["scale"])
            self.ema.codecs[m].set_latent_stats(s["shift"], s["scale"])
        return int(state["step"])

    def pairs_seen(self) -> dict[str, int]:
        counts = self.pair_counts.clone()
        if self.env.enabled:
            dist.all_reduce(counts)
        seen = dict(self.pairs_base)
        for k, c in zip(self.pair_keys, counts.tolist()):
            seen[k] = seen.get(k, 0) + int(c)
        return dict(sorted(seen.items()))

    def save(self, step: int) -> Path:
        pairs = self.pairs_seen()  # collective: every rank takes part
        path = self.ckdir / f"step_{step:06d}"
        if self.env.master:
            self.latent_stats = self.stage.checkpoint_latent_stats(self.ema, self.fixed_batches, self.device,
                                                                   self.latent_stats)
            info = ck.CheckpointInfo(self.model.cfg, self.scaling, self.latent_stats, pairs,
                                     self.cfg.stage.value, step, to_mapping(self.cfg))
            state = {"step": step, "optimizer": self.opt.state_dict(), "pairs_seen": pairs}
            ck.save_checkpoint(path, info, self.model, self.ema, state)
            ck.prune_checkpoints(self.ckdir, self.cfg.run.keep_last)
        if self.env.enabled:
            dist.barrier()
        return path

    # -- data -------------------------------------------------------------------------------
    def loader(self, start_step: int, steps: int, seed: int, rank: int, world: int):
        """Batches start_step .. start_step+steps-1 of this rank; the pair sampler is stateless per
        (seed, step, rank), so a resumed run reads exactly the data it would have read."""
        from torch.utils.data import DataLoader

        from earthgen_cli.data.chips import PairBatchSampler

        sampler = PairBatchSampler(self.data, self.cfg.optim.batch_size, seed, rank=rank, world_size=world,
                                   start_step=start_step, steps=steps, pairs=self.pairs,
                                   balance=self.cfg.data.balance)
        return iter(DataLoader(self.data, batch_sampler=sampler, collate_fn=collate,
                               num_workers=self.cfg.data.workers))

    def fixed_batches(self, n: int) -> list[Batch]:
        """The same few batches every time (sampler and crop seeds of their own, derived from
        run.seed): latent statistics, sample grids."""
        it = self.loader(0, n, sampler_seed(self.cfg.run.seed, "fixed-batches"), 0, 1)
        return [crop_and_augment(next(it), self.cfg.data.crop, False,
                                 torch.Generator().manual_seed(derive_seed(self.cfg.run.seed, "fixed-crops")))
                for _ in range(n)]

    def prepare(self, batch: Batch, g: torch.Generator) -> Batch:
        batch = crop_and_augment(batch, self.cfg.data.crop, self.cfg.data.augment, g)
        if (self.use_pseudo_pan and "rgb" in batch.mods and "pan" not in batch.mods
                and float(torch.rand((), generator=g)) < self.cfg.data.pseudo_pan):
            batch = pseudo_pan(batch, self.scaling["rgb"], self.scaling["pan"])
        return batch

    # -- one step ---------------------------------------------------------------------------
    def train_step(self, step: int, batches, window: LogWindow) -> None:
        """One optimizer step over optim.accum micro-batches, then the EMA update."""
        cfg, env, o = self.cfg, self.env, self.cfg.optim
        for group in self.opt.param_groups:
            group["lr"] = lr_at(step, cfg) * group.get("lr_mult", 1.0)
        for micro in range(o.accum):
            g = step_generator(cfg.run.seed, step, micro, env.rank)
            batch = self.prepare(next(batches), g)
            key = "+".join(sorted(batch.mods))
            if key in self.pair_keys:
                self.pair_counts[self.pair_keys.index(key)] += batch.size
            sync = contextlib.nullcontext()
            if env.enabled and micro < o.accum - 1:
                sync = self.objective.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                    result = self.stage.losses(self.objective, self.model, batch, g, self.device)
                (result["loss"] / o.accum).backward()
            window.add(result, batch.size, o.accum)
        if o.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, o.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        # EMA with warm-up: a 0.999 average over a run of a few hundred steps would still be
        # mostly the random initial weights (and the EMA is what inference loads).
        decay = min(o.ema, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(p, 1.0 - decay)
        window.steps += 1

    def log_window(self, step: int, window: LogWindow, log: Callable[[dict[str, Any]], None], bar) -> None:
        """Write the mean losses over the window (all ranks take part); `step` is the last one done."""
        env = self.env
        local = {k: v / window.steps for k, v in window.sums.items()}
        mean = mean_over_ranks(local, env, self.device)
        dt = time.perf_counter() - window.t0
        record = {"step": step + 1, **{k: round(v, 6) for k, v in sorted(mean.items())},
                  "lr": lr_at(step, self.cfg), "samples_per_s": round(window.samples * env.world / max(dt, 1e-9), 3)}
        if env.enabled:
            record["loss_by_rank"] = [round(v, 6) for v in per_rank(local["loss"], env, self.device)]
        if env.master:
            log(record)
            bar.set_postfix(loss=f"{mean['loss']:.4f}")

    def sample(self, done: int, log: Callable[[dict[str, Any]], None]) -> None:
        """The stage's sample grid from the EMA weights (master process only)."""
        psnr = self.stage.sample(self.ema, self.fixed_batches, self.out / "samples" / f"step_{done:06d}.png",
                                 self.device, self.cfg.run.seed)
        if psnr is not None:
            log({"step": done, "sample_psnr_db": round(psnr, 3)})

    # -- the loop ---------------------------------------------------------------------------
    def run(self, start: int, log: Callable[[dict[str, Any]], None]) -> Path:
        cfg, env, o, run = self.cfg, self.env, self.cfg.optim, self.cfg.run
        batches = self.loader(start * o.accum, (o.steps - start) * o.accum, run.seed, env.rank, env.world)
        from tqdm import tqdm

        bar = tqdm(total=o.steps, initial=start, disable=not (env.master and run.progress),
                   desc=f"train {cfg.stage.value}", unit="step", dynamic_ncols=True)
        window, path = LogWindow(), None
        for step in range(start, o.steps):
            self.train_step(step, batches, window)
            done = step + 1
            bar.update(1)
            if done % run.log_every == 0 or done == o.steps:
                self.log_window(step, window, log, bar)
                window = LogWindow()
            if done % run.save_every == 0 or done == o.steps:
                path = self.save(done)
            if env.master and (done == o.steps or (run.sample_every and done % run.sample_every == 0)):
                self.sample(done, log)
        bar.close()
        in_sync = check_ranks_identical(self.model, env, self.device)
        if env.master:
            log({"step": o.steps, "processes": env.world, "ranks_identical": in_sync})
        if not in_sync:
            raise RuntimeError("DDP replicas diverged: the ranks hold different weights")
        return path if path is not None else ck.newest_checkpoint(self.ckdir)


def train(cfg: TrainConfig, config_path: str, resume: bool = False, echo: Echo = None,
          notify: Echo = None) -> Path:
    """Run the codec or flow stage; returns the last checkpoint directory. `echo` also gets each
    log.jsonl line, `notify` the run's notices (the CLI: stdout and stderr). The evaluation's
    stages unet and cas are fitted by `evaluate.fit.fit_stage` (cli/train.py dispatches them there)."""
    if cfg.stage in (Stage.unet, Stage.cas):
        raise ValueError(f"stage {cfg.stage.value} is fitted by earthgen_cli.evaluate.fit.fit_stage, "
                         f"not the training loop")
    check_run_dir(cfg, resume)
    env, device = init_distributed(cfg.run.device)
    try:
        trainer = Trainer(cfg, config_path, env, device)
        # check_run_dir refused a folder with checkpoints but no --resume, and a finished run
        start = 0
        if resume and ck.newest_checkpoint(trainer.ckdir) is not None:
            start = trainer.resume()
        elif resume and env.master and notify is not None:
            # The README's advice after a crash is "run it again with --resume": after a crash before
            # the first checkpoint that must start the run, not fail.
            notify(f"earthgen: {trainer.ckdir}: no complete checkpoint yet; starting from step 0")
        run_log = RunLog(trainer.out, echo)
        if env.master:
            make_folder(trainer.out)
            run_log.write_config(cfg)
            truncate_log(run_log.file, start)
        return trainer.run(start, run_log.record)
    finally:
        shutdown(env)

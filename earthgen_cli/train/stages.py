"""What the training loop does differently per stage: the codec stage trains the per-modality KL
autoencoders, the flow stage the unified flow model and its adapters with the codecs frozen.

A stage supplies where its weights start, which parameters the optimizer sees, the loss module
(which the trainer may wrap in DDP), one micro-step's losses, the latent statistics a checkpoint
records, and the sample grid it writes. The trainer itself has no stage branches. Every random
draw of a micro-step comes from the caller's generator `g`, in a fixed order, so the same
(seed, step, micro-step, rank) gives the same losses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.flow.objective import CodecObjective, FlowObjective, latent_valid
from earthgen_cli.flow.path import SlotMode, mask_slot_times, sample_slot_times
from earthgen_cli.models.config import CodecKind
from earthgen_cli.models.earthgen import EarthGenModel
from earthgen_cli.train.batches import Batch
from earthgen_cli.train.config import Stage, TrainConfig
from earthgen_cli.train.starting_weights import init_from, load_codecs, measure_latent_stats

LatentStats = dict[str, dict[str, list[float]]]
FixedBatches = Callable[[int], list[Batch]]  # n -> the same n batches every call (Trainer.fixed_batches)
Losses = dict[str, torch.Tensor]


class TrainingStage(Protocol):
    # Samples per modality pair the starting weights have already seen (flow.init_from's count,
    # set by start(); {} from scratch): a run's pairs_seen carries it on.
    pairs_seen: dict[str, int]

    def start(self, model: EarthGenModel, fixed_batches: FixedBatches) -> LatentStats:
        """Load or measure the starting weights and latent statistics; returns the statistics."""

    def trainable_parameters(self, model: EarthGenModel) -> list[torch.nn.Parameter]: ...

    def objective(self, model: EarthGenModel) -> torch.nn.Module: ...

    def losses(self, objective: torch.nn.Module, model: EarthGenModel, batch: Batch, g: torch.Generator,
               device: torch.device) -> Losses:
        """One micro-step's losses ("loss" is the one to minimise); `objective` may be DDP-wrapped."""

    def checkpoint_latent_stats(self, ema: EarthGenModel, fixed_batches: FixedBatches, device: torch.device,
                                current: LatentStats) -> LatentStats:
        """The latent statistics a checkpoint records (called on the master process only)."""

    def sample(self, ema: EarthGenModel, fixed_batches: FixedBatches, path: Path, device: torch.device,
               seed: int) -> float | None:
        """Write a sample grid to `path`; returns its PSNR in dB, or None where the stage writes none."""


class CodecStage:
    def __init__(self, cfg: TrainConfig, where: str) -> None:
        self.cfg, self.where = cfg, where
        self.pairs_seen: dict[str, int] = {}

    def start(self, model: EarthGenModel, fixed_batches: FixedBatches) -> LatentStats:
        kind = model.cfg.codec.kind
        if kind is not CodecKind.kl:
            raise EarthgenError(f"{self.where}: the codec stage trains kl codecs; this model's codec is "
                                f"{kind.value} (nothing to train)")
        return {m: model.codecs[m].latent_stats() for m in model.cfg.modalities}

    def trainable_parameters(self, model: EarthGenModel) -> list[torch.nn.Parameter]:
        return list(model.codecs.parameters())

    def objective(self, model: EarthGenModel) -> torch.nn.Module:
        return CodecObjective(model, self.cfg.codec)

    def losses(self, objective: torch.nn.Module, model: EarthGenModel, batch: Batch, g: torch.Generator,
               device: torch.device) -> Losses:
        f, lc = model.cfg.codec.factor, model.cfg.codec.latent_channels
        noise = [torch.randn((batch.size, lc, x.shape[-2] // f, x.shape[-1] // f), generator=g).to(device)
                 for x in batch.images]
        batch = batch.to(device)
        return objective(batch.images, batch.valid, batch.mods, noise)

    def checkpoint_latent_stats(self, ema: EarthGenModel, fixed_batches: FixedBatches, device: torch.device,
                                current: LatentStats) -> LatentStats:
        # The codecs changed since the last checkpoint: the flow stage reads these statistics.
        stats = measure_latent_stats(ema, fixed_batches(8), device)
        for m, s in stats.items():
            ema.codecs[m].set_latent_stats(s["shift"], s["scale"])
        return stats

    def sample(self, ema: EarthGenModel, fixed_batches: FixedBatches, path: Path, device: torch.device,
               seed: int) -> float | None:
        return None


class FlowStage:
    def __init__(self, cfg: TrainConfig, where: str, data, scaling: dict) -> None:
        self.cfg, self.where, self.scaling = cfg, where, scaling  # scaling: init_from must match it
        self.pairs_seen: dict[str, int] = {}
        self.captions = None
        if cfg.data.text:
            from earthgen_cli.train.captions import CaptionTable

            self.captions = CaptionTable.for_dataset(data, where)

    def start(self, model: EarthGenModel, fixed_batches: FixedBatches) -> LatentStats:
        flow, kind = self.cfg.flow, model.cfg.codec.kind
        if kind is CodecKind.kl:
            stats = load_codecs(model, flow.codec_from, self.where)
        elif flow.codec_from:
            raise EarthgenError(f"{self.where}: flow.codec_from is set but this model's codec is "
                                f"{kind.value} (nothing to load); remove flow.codec_from")
        else:
            # Even space-to-depth latents get unit variance per channel: the normalised images
            # sit in a narrow band of [-1, 1], far below the noise, and the flow learns slowly
            # at such a low signal-to-noise ratio. Every rank measures the same fixed batches.
            stats = measure_latent_stats(model, fixed_batches(32), torch.device("cpu"))
            for m, st in stats.items():
                model.codecs[m].set_latent_stats(st["shift"], st["scale"])
        if flow.init_from:
            stats, self.pairs_seen = init_from(model, self.scaling, flow.init_from, self.where)
        model.codecs.requires_grad_(False)
        return stats

    def trainable_parameters(self, model: EarthGenModel) -> list[torch.nn.Parameter]:
        """The flow parameters, or (flow.train_only) those whose names start with one of its
        prefixes, the rest frozen: a part grown on a trained model learns the residual of a model
        that stays as it was."""
        only = tuple(self.cfg.flow.train_only)
        if not only:
            return model.flow_parameters()
        wanted = {id(p) for p in model.flow_parameters()}
        params = [p for n, p in model.named_parameters() if id(p) in wanted and n.startswith(only)]
        if not params:
            raise EarthgenError(f"{self.where}: flow.train_only {list(only)} names no parameter of this model "
                                f"(e.g. generator.pixel. needs model.pixel_path)")
        keep = {id(p) for p in params}
        for p in model.parameters():
            if id(p) not in keep:
                p.requires_grad_(False)
        return params

    def objective(self, model: EarthGenModel) -> torch.nn.Module:
        return FlowObjective(model, self.cfg.flow)

    def losses(self, objective: torch.nn.Module, model: EarthGenModel, batch: Batch, g: torch.Generator,
               device: torch.device) -> Losses:
        flow, b = self.cfg.flow, batch.size
        masked = flow.masked > 0 and bool(torch.rand((), generator=g) < flow.masked)
        if masked and len(batch.mods) > 1 and bool(torch.rand((), generator=g) < 0.5):
            batch = batch.slots([int(torch.randint(0, len(batch.mods), (), generator=g))])  # plain inpainting
        st = sample_slot_times(b, len(batch.mods), flow.modes, g, flow.time_mean, flow.time_uniform,
                                flow.time_one)
        if masked:
            f, p = model.cfg.codec.factor, model.cfg.patch
            grid = (batch.images[0].shape[-2] // (f * p), batch.images[0].shape[-1] // (f * p))
            st = mask_slot_times(st, grid, g)
        # Condition dropout drops GSD and text together (what guidance compares against); a missing
        # GSD (NaN) or caption (a NaN text row) is handled per condition by the model.
        drop = (torch.rand(b, generator=g) < flow.cond_drop) | (st.mode == SlotMode.dropped)
        text = None if self.captions is None else self.captions.lookup(batch.captions).to(device)
        batch = batch.to(device)
        with torch.no_grad():
            x0 = [model.codecs[m].encode(x).float() for m, x in zip(batch.mods, batch.images)]
        eps = [torch.randn(z.shape, generator=g).to(device) for z in x0]
        valid = [latent_valid(v, model.cfg.codec.factor) for v in batch.valid]
        return objective(x0, valid, batch.mods, eps, st.t.to(device), st.loss_mask.to(device),
                         batch.gsd, drop.to(device), batch.index, text)

    def checkpoint_latent_stats(self, ema: EarthGenModel, fixed_batches: FixedBatches, device: torch.device,
                                current: LatentStats) -> LatentStats:
        return current  # the codecs are frozen: the statistics of the start hold throughout

    def sample(self, ema: EarthGenModel, fixed_batches: FixedBatches, path: Path, device: torch.device,
               seed: int) -> float | None:
        from earthgen_cli.train.samples import write_sample_grid

        return write_sample_grid(ema, fixed_batches(1)[0], path, device, seed)


def make_stage(cfg: TrainConfig, where: str, data, scaling: dict) -> TrainingStage:
    if cfg.stage is Stage.codec:
        return CodecStage(cfg, where)
    if cfg.stage is Stage.flow:
        return FlowStage(cfg, where, data, scaling)
    raise ValueError(f"stage {cfg.stage.value} is fitted by earthgen_cli.evaluate.fit.fit_stage, not the training loop")

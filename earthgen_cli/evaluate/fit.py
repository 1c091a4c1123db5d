"""Fitting the models the evaluation needs besides the unified one: `earthgen train` stages `unet`
and `cas` (cli/train.py dispatches them here, not to the training loop) and `evaluate --unet-steps`
/ `--cas-steps`. Trained through the same entry point, on the same built dataset, with the same
step budget (`optim.steps`, `optim.batch_size`) so a comparison with the unified model is like for
like.

- stage `unet`: the `pairwise-unet` baseline, one pix2pix-style U-Net per direction with an L1
  loss (baselines.py), saved as `run.out_dir/unet_SOURCE_TARGET/`.
- stage `cas`: one CLIP-style dual encoder per modality pair with InfoNCE (cas.py), the
  encoder that CAS (MetaEarth-MM eq. 20) reads, saved as `run.out_dir/cas_A_B/`.

Each item is an independent small model, so under torchrun the items are shared out between the
processes (rank r trains items r, r + world, ...) instead of data-parallel training of each one.
A pair's chips are read once into memory; minibatches are drawn from a generator seeded by
(seed, item), so a run is reproducible whatever the number of processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.scratch import make_folder
from earthgen_cli.evaluate.baselines import PairwiseUNet, save_unet, train_pairwise_unet, unet_depth_for
from earthgen_cli.evaluate.cas import CASConfig, save_cas, train_cas
from earthgen_cli.evaluate.dataset_pairs import DatasetPairs
from earthgen_cli.evaluate.metrics import to_unit
from earthgen_cli.evaluate.pair_source import Direction, parse_directions
from earthgen_cli.seeds import derive_seed
from earthgen_cli.train.config import Stage, TrainConfig
from earthgen_cli.train.run_folder import Echo, RunLog


def _load_direction(pairs, split: str, direction, batch: int = 64):
    """Every chip of `split` holding both modalities: (source, target, valid) model-space tensors."""
    parts = list(pairs.batches(split, direction, batch))
    if not parts:
        raise EarthgenError(f"{pairs.name}: split {split} has no chip holding both {direction.source} "
                            f"and {direction.target}")
    return (torch.cat([p.source for p in parts]), torch.cat([p.target for p in parts]),
            torch.cat([p.valid for p in parts]))


def random_batches(tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int) -> Callable[[], Iterator]:
    """One shuffled pass over in-memory chips per call, a new order each pass (for cycle_batches)."""
    g = torch.Generator().manual_seed(seed)
    n = tensors[0].shape[0]

    def one_pass():
        order = torch.randperm(n, generator=g)
        for lo in range(0, n, batch_size):
            idx = order[lo : lo + batch_size]
            yield tuple(t[idx] for t in tensors)

    return one_pass


def _directions(pairs, split: str, wanted: tuple[str, ...], where: str):
    if not wanted:
        found = pairs.pairs_with_chips(split)
        if not found:
            raise EarthgenError(f"{where}: split {split} of {pairs.name} has no chip holding two modalities")
        return found
    chosen = parse_directions(",".join(wanted))
    for d in chosen:
        if pairs.count(split, d) == 0:
            raise EarthgenError(f"{where}: split {split} of {pairs.name} has no chip holding both "
                                f"{d.source} and {d.target} (direction {d.key})")
    return list(chosen)


def _cas_pairs(pairs, split: str, wanted: tuple[str, ...], where: str):
    """Unordered modality pairs as directions with the names sorted: 'sar+rgb' -> rgb:sar."""
    if not wanted:
        return [d for d in _directions(pairs, split, (), where) if d.source < d.target]
    text = []
    for item in wanted:
        names = [p.strip() for p in str(item).split("+")]
        if len(names) != 2:
            raise EarthgenError(f"{where}: cas.pairs item {item!r}: write two modalities, e.g. rgb+sar")
        text.append(":".join(sorted(names)))
    return [Direction(d.source, d.target) for d in _directions(pairs, split, tuple(text), where)]


def item_dir(out_dir: Path, stage: Stage, source: str, target: str) -> Path:
    return Path(out_dir) / f"{stage.value}_{source}_{target}"


def fit_stage(cfg: TrainConfig, config_path: str, resume: bool = False, echo: Echo = None) -> list[Path]:
    """Train every U-Net (stage unet) or CAS encoder (stage cas) this process is responsible for;
    returns the directories it wrote. `echo` also gets each log.jsonl line."""
    if cfg.stage not in (Stage.unet, Stage.cas):
        raise ValueError(f"fit_stage trains stages unet and cas, not {cfg.stage.value}")
    if resume:
        raise EarthgenError(f"{config_path}: stage {cfg.stage.value} trains small models from scratch; "
                            f"--resume applies to the codec and flow stages")
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not Path(cfg.data.root).is_dir():
        raise EarthgenError(f"{config_path}: data.root {cfg.data.root} is not a built dataset directory")
    pairs = DatasetPairs(cfg.data.root)
    split = cfg.data.split
    if cfg.stage is Stage.unet:
        items = _directions(pairs, split, cfg.unet.directions, config_path)
    else:
        items = _cas_pairs(pairs, split, cfg.cas.pairs, config_path)
    out = Path(cfg.run.out_dir)
    mine = items[rank::world]
    for d in mine:
        if item_dir(out, cfg.stage, d.source, d.target).exists():
            raise EarthgenError(f"{item_dir(out, cfg.stage, d.source, d.target)}: already exists; "
                                f"choose another run.out_dir")
    make_folder(out)
    run_log = RunLog(out, echo)
    if rank == 0:
        run_log.write_config(cfg)
    written = []
    for d in mine:
        started = time.perf_counter()
        path, chips, loss = _fit_and_save(cfg, pairs, d, derive_seed(cfg.run.seed, d.key), out)
        run_log.record({"stage": cfg.stage.value, "item": d.key, "steps": cfg.optim.steps, "chips": chips,
                        "final_loss": round(loss, 6), "seconds": round(time.perf_counter() - started, 1),
                        "rank": rank, "path": str(path)})
        written.append(path)
    return written


def _dataset_meta(pairs, d) -> dict:
    return {"dataset": str(Path(pairs.path).resolve()),
            "scaling": {m: pairs.scaling[m].to_json() for m in (d.source, d.target)}}


def fit_unet(pairs, split: str, d, steps: int, batch_size: int, seed: int, lr: float = 2e-4,
             base_channels: int = 32, dropout: float = 0.0, losses: list[float] | None = None):
    """A pairwise U-Net for direction `d` on the `split` chips of `pairs` (read once into memory,
    shuffled minibatches): (PairwiseUNet, number of chips). Shared by stage unet and
    `evaluate --unet-steps`."""
    from earthgen_cli.models.unet import UNetConfig

    tensors = _load_direction(pairs, split, d)
    src, tgt, _ = tensors
    config = UNetConfig(src.shape[1], tgt.shape[1], base_channels=base_channels,
                        depth=unet_depth_for(min(src.shape[-2:])), dropout=dropout)
    model = train_pairwise_unet(random_batches(tensors, batch_size, seed), config, steps, lr=lr, seed=seed,
                                losses=losses)
    return PairwiseUNet(model, d.source, d.target), int(src.shape[0])


def fit_cas(pairs, split: str, d, steps: int, batch_size: int, seed: int, lr: float = 1e-3, width: int = 32,
            depth: int = 4, embed_dim: int = 128, losses: list[float] | None = None):
    """A CAS dual encoder for the pair (d.source, d.target) on real unit-scale chips of `split`:
    (DualEncoder, number of chips). Shared by stage cas and `evaluate --cas-steps`."""
    src, tgt, _ = _load_direction(pairs, split, d)
    sa, sb = pairs.scaling[d.source], pairs.scaling[d.target]
    unit = (to_unit(sa.from_model(src), sa), to_unit(sb.from_model(tgt), sb))
    config = CASConfig(d.source, d.target, src.shape[1], tgt.shape[1], width, depth, embed_dim)
    model = train_cas(random_batches(unit, batch_size, seed), config, steps, lr=lr, seed=seed, losses=losses)
    return model, int(src.shape[0])


def _fit_and_save(cfg: TrainConfig, pairs, d, seed: int, out: Path) -> tuple[Path, int, float]:
    """One item of stage unet or cas: (directory written, chips, mean loss of the last 50 steps)."""
    o, losses = cfg.optim, []
    meta = {**_dataset_meta(pairs, d), "steps": o.steps}
    path = item_dir(out, cfg.stage, d.source, d.target)
    if cfg.stage is Stage.unet:
        unet, chips = fit_unet(pairs, cfg.data.split, d, o.steps, o.batch_size, seed, o.lr,
                               cfg.unet.base_channels, cfg.unet.dropout, losses)
        save_unet(unet.model, path, d.source, d.target, meta)
    else:
        encoder, chips = fit_cas(pairs, cfg.data.split, d, o.steps, o.batch_size, seed, o.lr, cfg.cas.width,
                                 cfg.cas.depth, cfg.cas.embed_dim, losses)
        save_cas(encoder, path, meta)
    return path, chips, sum(losses[-50:]) / max(1, len(losses[-50:]))

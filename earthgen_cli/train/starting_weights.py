"""Where a flow run starts: another flow checkpoint's weights (flow.init_from), a codec stage's
codecs (flow.codec_from), and the codec latents' statistics measured on the data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from earthgen_cli import checkpoint as ck
from earthgen_cli.errors import EarthgenError
from earthgen_cli.models.earthgen import DIRECT_PARTS, EarthGenModel
from earthgen_cli.train.batches import Batch


def init_from(model: EarthGenModel, scaling: dict, path: str,
              where: str) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """Start from another flow checkpoint's EMA weights (codecs and latent statistics included).
    The architecture and the value scaling of every modality must match: the weights only mean
    something on data normalised the way they were trained. Returns its latent statistics and its
    samples per pair (pairs_seen), which the new run's count carries on."""
    info = ck.read_info(Path(path))
    if info.stage != "flow":
        raise EarthgenError(f"{where}: flow.init_from {path} is a {info.stage}-stage checkpoint, not a flow one")
    # A model may grow the zero-initialised skip (model.aligned_skip) and pixel path
    # (model.pixel_path) on top of one without them: they start as exact no-ops.
    grows = tuple(prefix for field, prefix in DIRECT_PARTS.items()
                  if getattr(model.cfg, field) and not getattr(info.model, field))
    # A pixel path with model.pixel_norm on a checkpoint whose path has none is re-made: the old
    # path's weights are left out (v7-v9's had died) and the new one starts as an exact no-op.
    # model.pixel_by_time may change with it (the path's share scaled by the target's time).
    pixel = DIRECT_PARTS["pixel_path"]
    # So is one whose model.pixel_pairs differs (a path per pair against one shared).
    remake = (pixel,) if (model.cfg.pixel_path and info.model.pixel_path
                          and (model.cfg.pixel_norm, model.cfg.pixel_pairs)
                          != (info.model.pixel_norm, info.model.pixel_pairs)) else ()
    # And a context path whose model.context_fill differs (its inputs and starting map change).
    context = DIRECT_PARTS["context_path"]
    if model.cfg.context_path and info.model.context_path and model.cfg.context_fill != info.model.context_fill:
        remake += (context,)
    path_cfg = model.cfg if (pixel in remake or pixel in grows) else info.model  # whose pixel-path settings hold
    grown = dataclasses.replace(info.model, aligned_skip=model.cfg.aligned_skip or info.model.aligned_skip,
                                pixel_path=info.model.pixel_path or model.cfg.pixel_path,
                                pixel_norm=path_cfg.pixel_norm, pixel_by_time=path_cfg.pixel_by_time,
                                pixel_pairs=path_cfg.pixel_pairs,
                                pixel_sees_pred=path_cfg.pixel_sees_pred or model.cfg.pixel_sees_pred,
                                # no parameter depends on it: a run may start training with per-token times
                                token_times=model.cfg.token_times,
                                context_path=(model.cfg.context_path if context in remake
                                              else info.model.context_path or model.cfg.context_path),
                                context_fill=model.cfg.context_fill if model.cfg.context_path else info.model.context_fill)
    if grown != model.cfg:
        raise EarthgenError(f"{where}: flow.init_from {path} has another model (preset, codec, modalities or "
                            f"bands differ from this config)")
    for m, s in scaling.items():
        if info.scaling.get(m) != s:
            raise EarthgenError(f"{where}: flow.init_from {path} normalises {m} differently from {where}'s "
                                f"dataset (value scaling differs); fine-tune on a dataset built with its scaling")
    # model.pixel_sees_pred turned on: each pair's stem reads the prediction too, with zero weights
    widen = (pixel + "stem.",) if model.cfg.pixel_sees_pred and not info.model.pixel_sees_pred else ()
    ck.load_weights(model, Path(path) / "ema.safetensors", new=grows, fresh=remake, widen=widen)
    for m, st in info.latent_stats.items():
        model.codecs[m].set_latent_stats(st["shift"], st["scale"])
    return dict(info.latent_stats), {k: int(v) for k, v in info.pairs_seen.items()}


def load_codecs(model: EarthGenModel, path: str, where: str) -> dict[str, dict[str, list[float]]]:
    if not path:
        raise EarthgenError(f"{where}: a kl codec needs flow.codec_from (a codec-stage checkpoint)")
    source, info = ck.load_model(Path(path), ema=True)
    stats = {}
    for m in model.cfg.modalities:
        if m not in source.codecs or info.model.codec != model.cfg.codec or info.model.bands[m] != model.cfg.bands[m]:
            raise EarthgenError(f"{path}: its codecs do not match this model (modality {m}, codec settings, bands)")
        model.codecs[m].load_state_dict(source.codecs[m].state_dict())
        stats[m] = info.latent_stats[m]
        model.codecs[m].set_latent_stats(stats[m]["shift"], stats[m]["scale"])
    return stats


STD_FLOOR = 0.25


@torch.no_grad()
def measure_latent_stats(model: EarthGenModel, batches: list[Batch], device: torch.device) -> dict[str, dict]:
    """Per-channel shift/scale making the codec's latents zero-mean, unit-variance on the data."""
    sums: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        for m, x in zip(batch.mods, batch.images):
            sums.setdefault(m, []).append(model.codecs[m].raw_encode(x.to(device)).float().transpose(0, 1).flatten(1))
    stats = {}
    for m in model.cfg.modalities:
        if m not in sums:
            stats[m] = model.codecs[m].latent_stats()
            continue
        z = torch.cat(sums[m], dim=1)
        # A floor on the std keeps a channel that is nearly flat in the measured batches (a flat
        # band, one dark scene) from being blown up more than 4x against the rest of the data.
        stats[m] = {"shift": z.mean(1).tolist(), "scale": (1.0 / z.std(1).clamp_min(STD_FLOOR)).tolist()}
    return stats

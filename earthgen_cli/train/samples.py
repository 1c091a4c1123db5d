"""Sample grids written during training: source | translated | target for a fixed batch, both
directions of its pair, with the PSNR of the translations (model space, range [-1, 1])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from earthgen_cli.flow.generate import SamplingOptions, translate_latents
from earthgen_cli.models.earthgen import EarthGenModel
from earthgen_cli.train.batches import Batch


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return 10.0 * np.log10(data_range**2 / max(mse, 1e-12))


def to_display(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) model space -> (H, W, 3) uint8: the first three bands, or the first band as grey."""
    img = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, -1, -1)
    return ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def translate_batch(model: EarthGenModel, batch: Batch, source: int, target: int, device: torch.device,
                    seed: int, steps: int = 8) -> torch.Tensor:
    """Translate slot `source` into slot `target` for a whole batch; returns model-space images."""
    src_m, tgt_m = batch.mods[source], batch.mods[target]
    z = model.codecs[src_m].encode(batch.images[source].to(device))
    ch = model.cfg.latent_channels(tgt_m)
    g = torch.Generator().manual_seed(seed)
    init = torch.randn((batch.size, ch, *z.shape[-2:]), generator=g).to(device)
    gsd = torch.nan_to_num(batch.gsd, nan=1.0).to(device)
    out = translate_latents(model, {src_m: z}, tgt_m, init, SamplingOptions(steps=steps), gsd=gsd)
    return model.codecs[tgt_m].decode(out.latent).float()


def write_sample_grid(model: EarthGenModel, batch: Batch, path: Path, device: torch.device, seed: int) -> float:
    from PIL import Image

    rows, scores = [], []
    for s, t in ((0, 1), (1, 0)):
        pred = translate_batch(model, batch, s, t, device, seed)
        target = batch.images[t].to(device)
        scores.append(psnr(pred, target))
        for i in range(batch.size):
            rows.append(np.concatenate([to_display(batch.images[s][i]), to_display(pred[i]),
                                        to_display(target[i])], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return float(np.mean(scores))

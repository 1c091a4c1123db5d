"""Training objectives as modules (the network predicts, the process owns the loss: SiT's
`training_losses`). Wrapping the loss in a module lets DDP see the adapters and the temperature,
which are used outside the network's own forward.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from earthgen_cli.flow import losses
from earthgen_cli.flow.path import interpolate, to_x0, velocity_target
from earthgen_cli.models.codecs import KLCodec
from earthgen_cli.models.config import PredictionTarget
from earthgen_cli.models.earthgen import EarthGenModel, cell_time


class FlowWeights(Protocol):
    """The loss weights FlowObjective reads (train.config.FlowConfig)."""

    lambda_sc: float
    lambda_calib: float
    beta_nll: float
    chip_norm: float


class CodecWeights(Protocol):
    """The loss weights CodecObjective reads (train.config.CodecTrainConfig)."""

    kl_weight: float
    l1_weight: float


def latent_valid(valid: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, H, W) pixel validity -> (B, 1, h, w): a latent cell counts only if all its pixels are valid."""
    v = valid[:, None].float()
    return -F.max_pool2d(-v, factor) if factor > 1 else v


def chip_weight(x0: torch.Tensor, valid: torch.Tensor, floor: float) -> torch.Tensor:
    """(B, C, h, w) clean latents, (B, 1, h, w) validity -> (B, 1, 1, 1) weights 1 / (v + floor),
    v the sample's spatial variance over valid cells, averaged over channels. flow_loss is a
    weighted mean, so the weights set each sample's share, not the loss's scale."""
    v = valid.to(x0.dtype)
    n = v.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    mean = (x0 * v).sum(dim=(2, 3), keepdim=True) / n
    var = (((x0 - mean) ** 2) * v).sum(dim=(2, 3), keepdim=True) / n
    return 1.0 / (var.mean(dim=1, keepdim=True).detach().float() + floor)


class FlowObjective(nn.Module):
    def __init__(self, model: EarthGenModel, cfg: FlowWeights) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, x0: Sequence[torch.Tensor], valid: Sequence[torch.Tensor], mods: Sequence[str],
                eps: Sequence[torch.Tensor], t: torch.Tensor, loss_mask: torch.Tensor,
                gsd: torch.Tensor | None, drop: torch.Tensor, scene_ids: torch.Tensor | None = None,
                text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x0, valid (B, 1, h, w), eps: per slot; t: (B, K), or (B, K, hp, wp) per token (masked-slot
        samples: the clean tokens are not trained); loss_mask: (B, K); drop: (B,) bool;
        scene_ids: (B,) chip index, so that a chip drawn twice is not its own negative;
        text: (B, text_dim) caption embeddings, NaN rows for chips without one."""
        model, target_kind = self.model, self.model.cfg.target
        tk = [cell_time(t, k, a.shape[-2:]) for k, a in enumerate(x0)]  # (B, 1, 1 or h, 1 or w)
        xt = [interpolate(a, e, tk[k]) for k, (a, e) in enumerate(zip(x0, eps))]
        out = model(xt, mods, t, gsd=gsd, text=text, drop=drop)
        flow, calib, mse = [], [], []
        for k, m in enumerate(mods):
            mask = valid[k] * loss_mask[:, k, None, None, None].to(valid[k].dtype)
            if t.dim() != 2:
                mask = mask * (tk[k] > 0).to(mask.dtype)
            if self.cfg.chip_norm > 0:
                mask = mask * chip_weight(x0[k], valid[k], self.cfg.chip_norm)
            target = velocity_target(x0[k], eps[k]) if target_kind is PredictionTarget.velocity else x0[k]
            lv = None if out.logvar is None else out.logvar[k]
            flow.append(losses.flow_loss(out.pred[k], target, mask, lv, self.cfg.beta_nll))
            with torch.no_grad():  # plain MSE for the log: the beta-NLL can be negative
                mse.append(losses.flow_loss(out.pred[k], target, mask))
            if m in model.adapters and self.cfg.lambda_calib > 0:
                x0_hat = to_x0(out.pred[k].float(), xt[k], tk[k], target_kind)
                calib.append(losses.calibration_loss(model.adapters[m], x0_hat, x0[k], mask))
        result = {"flow": torch.stack(flow).mean(), "mse": torch.stack(mse).mean()}
        total = result["flow"]
        if calib:
            result["calib"] = torch.stack(calib).mean()
            total = total + self.cfg.lambda_calib * result["calib"]
        if len(mods) >= 2 and t.shape[0] >= 2 and self.cfg.lambda_sc > 0:
            result["sc"] = losses.scene_consistency_loss(out.scene[:, 0], out.scene[:, 1], model.log_temperature,
                                                         scene_ids)
            total = total + self.cfg.lambda_sc * result["sc"]
        result["loss"] = total
        return result


class CodecObjective(nn.Module):
    """KL autoencoder loss per modality slot: masked L1 + MSE reconstruction + a small KL term
    (Any2Any stage 1 without the LPIPS term, whose VGG backbone cannot be had offline)."""

    def __init__(self, model: EarthGenModel, cfg: CodecWeights) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, images: Sequence[torch.Tensor], valid: Sequence[torch.Tensor], mods: Sequence[str],
                noise: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        rec, kl = [], []
        for x, v, m, n in zip(images, valid, mods, noise):
            codec = self.model.codecs[m]
            assert isinstance(codec, KLCodec)
            dist = codec.posterior(x)
            z = dist.mean + dist.std * n  # reparameterised, noise from the caller's generator
            y = codec.raw_decode(z).float()
            mask = v[:, None].float()
            err = (y - x.float()).abs()
            rec.append(losses.flow_loss(y, x, mask) + self.cfg.l1_weight * (err * mask).sum()
                       / (mask.sum() * x.shape[1]).clamp_min(1.0))
            kl.append(dist.kl().mean() / x[0].numel())
        result = {"rec": torch.stack(rec).mean(), "kl": torch.stack(kl).mean()}
        result["loss"] = result["rec"] + self.cfg.kl_weight * result["kl"]
        return result

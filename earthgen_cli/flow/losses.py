"""Training losses. Maths only: the trainable parts (temperature, adapters) live in the model.

- `flow_loss`: regression on the prediction target, masked on clean slots and nodata pixels,
  optionally beta-NLL weighted by a predicted log-variance (C-DiffSET's confidence-guided loss).
- `scene_consistency_loss`: symmetric InfoNCE on the mean token-wise cosine similarity between two
  slots' scene tokens (MetaEarth-MM eq. 15-17).
- `calibration_loss`: the residual adapter's loss with the backbone's prediction detached (Any2Any).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # Mean over the weighted elements; an all-masked batch gives 0 with a gradient path intact.
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def flow_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    logvar: torch.Tensor | None = None,
    beta: float = 0.5,
) -> torch.Tensor:
    """Mean squared error over (B, C, H, W) where `mask` (broadcastable, 0/1) is set.

    With `logvar` (B, 1|C, H, W) it is the beta-NLL of Seitzer et al. 2022: the Gaussian NLL
    weighted per element by var^beta (detached), so that a large predicted variance cannot simply
    switch the regression off; beta=0 is plain NLL, beta=1 has MSE-like gradients for the mean.
    """
    weight = mask.to(pred.dtype).expand_as(pred)
    err = (pred.float() - target.float()) ** 2
    if logvar is None:
        return _masked_mean(err, weight.float())
    logvar = logvar.float().clamp(-10.0, 10.0)
    var = logvar.exp()
    nll = 0.5 * (err / var + logvar)
    if beta > 0:
        nll = nll * var.detach() ** beta
    return _masked_mean(nll, weight.float())


def scene_similarity(s_a: torch.Tensor, s_b: torch.Tensor) -> torch.Tensor:
    """(B, N, D) x (B, N, D) -> (B, B): mean over the N aligned tokens of their cosine similarity."""
    a = F.normalize(s_a.float(), dim=-1)
    b = F.normalize(s_b.float(), dim=-1)
    return torch.einsum("bnd,mnd->bm", a, b) / a.shape[1]


def scene_consistency_loss(s_a: torch.Tensor, s_b: torch.Tensor, log_temperature: torch.Tensor,
                           scene_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: the same scene seen in two modalities is the positive, the rest of the batch
    the negatives. `log_temperature` is the model's learnable parameter (tau = exp of it).

    `scene_ids` (B,) marks samples of the same scene (a chip drawn twice in one batch): those are
    left out of each other's negatives, which would otherwise ask for two opposite things at once."""
    logits = scene_similarity(s_a, s_b) / log_temperature.float().exp()
    if scene_ids is not None:
        same = scene_ids[:, None] == scene_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def calibration_loss(
    adapter: Callable[[torch.Tensor], torch.Tensor], x0_hat: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """|| sg(x0_hat) + A(sg(x0_hat)) - x0 ||^2: the adapter learns the residual, the backbone gets no
    gradient from it (stop-gradient), so calibration cannot disturb the shared model."""
    base = x0_hat.detach()
    return flow_loss(base + adapter(base), x0, mask)

"""CAS, the cross-modal alignment score (MetaEarth-MM eq. 20), and its CLIP-style dual encoder.

For a modality pair (a, b) a small image encoder per modality maps chips to unit vectors; it is
trained on real paired chips with the symmetric InfoNCE loss of CLIP (Radford et al. 2021) and a
learnable temperature. CAS_{a,b} = 100 x mean cosine(f_a(generated a), f_b(real b)) over pairs.
No pretrained CLIP exists offline here, so the encoders are ours and are trained per dataset:
CAS numbers compare methods within one report, not with the paper's.

Encoders read unit-scale images (metrics.to_unit, mapped to [-1, 1]): the same view the other
metrics score, so a generated chip and a real chip are encoded identically. A checkpoint is a
directory with config.json + model.safetensors, nothing pickled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.epochs import cycle_batches
from earthgen_cli.seeds import seeded_init

CAS_FORMAT = "earthgen-cas-encoder"


@dataclass(frozen=True)
class CASConfig:
    modality_a: str
    modality_b: str
    channels_a: int
    channels_b: int
    width: int = 32
    depth: int = 4  # stride-2 stages; any chip size works (global average pooling)
    embed_dim: int = 128

    def __post_init__(self) -> None:
        if self.modality_a == self.modality_b:
            raise ValueError("a CAS encoder pairs two different modalities")
        if min(self.channels_a, self.channels_b, self.width, self.depth, self.embed_dim) < 1:
            raise ValueError(f"inconsistent CASConfig sizes: {self}")


class ImageEncoder(nn.Module):
    """(B, C, H, W) in [-1, 1] -> (B, D) unit vectors."""

    def __init__(self, in_channels: int, width: int, depth: int, embed_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1)]
        ch = width
        for i in range(depth):
            out = width * 2 ** min(i + 1, 3)
            layers += [nn.GroupNorm(min(8, ch), ch), nn.SiLU(), nn.Conv2d(ch, out, 3, stride=2, padding=1)]
            ch = out
        layers += [nn.GroupNorm(min(8, ch), ch), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x).mean(dim=(-2, -1))  # (B, ch): global average pool
        return F.normalize(self.head(h), dim=-1)  # (B, D)


class DualEncoder(nn.Module):
    def __init__(self, config: CASConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_a = ImageEncoder(config.channels_a, config.width, config.depth, config.embed_dim)
        self.encoder_b = ImageEncoder(config.channels_b, config.width, config.depth, config.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    def encode(self, modality: str, unit: torch.Tensor) -> torch.Tensor:
        """Unit-scale (B, C, H, W) images of `modality` -> (B, D) unit embeddings."""
        if modality == self.config.modality_a:
            encoder, channels = self.encoder_a, self.config.channels_a
        elif modality == self.config.modality_b:
            encoder, channels = self.encoder_b, self.config.channels_b
        else:
            raise EarthgenError(f"CAS encoder pairs {self.config.modality_a} and "
                                f"{self.config.modality_b}, not {modality}")
        if unit.shape[1] != channels:
            raise EarthgenError(f"CAS encoder for {modality} expects {channels} bands, got {unit.shape[1]}")
        return encoder(unit * 2.0 - 1.0)


def info_nce(za: torch.Tensor, zb: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over the batch: pair n of a must pick pair n of b and vice versa."""
    logits = log_scale.clamp(max=math.log(100.0)).exp() * za @ zb.T  # CLIP caps the scale at 100
    labels = torch.arange(za.shape[0], device=za.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def cas_train_step(model: DualEncoder, optimizer: torch.optim.Optimizer,
                   unit_a: torch.Tensor, unit_b: torch.Tensor) -> float:
    """One contrastive step on a batch of real pairs (unit scale); returns the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = info_nce(model.encode(model.config.modality_a, unit_a),
                    model.encode(model.config.modality_b, unit_b), model.log_scale)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def cas_score(model: DualEncoder, generated: torch.Tensor, generated_modality: str,
              real: torch.Tensor, real_modality: str) -> torch.Tensor:
    """Per-pair 100 x cosine (B,) between generated chips and their real counterparts (eq. 20)."""
    model.eval()
    za = model.encode(generated_modality, generated)
    zb = model.encode(real_modality, real)
    return 100.0 * (za * zb).sum(dim=-1)


def train_cas(batches: Callable[[], Iterable[tuple[torch.Tensor, ...]]], config: CASConfig,
              steps: int, lr: float = 1e-3, seed: int = 0, losses: list[float] | None = None) -> DualEncoder:
    """`steps` InfoNCE steps over real (a, b) unit-scale pairs; `batches()` starts one pass. The
    seed fixes the initial weights without touching the global RNG; each step's loss is appended
    to `losses` when given."""
    with seeded_init(seed):
        model = DualEncoder(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for unit_a, unit_b, *_ in cycle_batches(batches, steps, f"CAS encoder {config.modality_a},{config.modality_b}"):
        if unit_a.shape[0] < 2:
            continue  # InfoNCE needs negatives: a batch of one pair teaches nothing
        loss = cas_train_step(model, optimizer, unit_a, unit_b)
        if losses is not None:
            losses.append(loss)
    return model.eval()


def save_cas(model: DualEncoder, path: Path, extra: dict | None = None) -> Path:
    """Write config.json + model.safetensors under a temporary name, then rename."""
    from earthgen_cli.checkpoint import write_model_dir

    meta = {"format": CAS_FORMAT, "config": asdict(model.config), **(extra or {})}
    return write_model_dir(Path(path), meta, {"model": model})


def load_cas(path: Path) -> DualEncoder:
    """A CAS encoder directory -> DualEncoder in eval mode; one-line errors for bad input."""
    from safetensors.torch import load_file

    from earthgen_cli.checkpoint import read_model_dir

    path = Path(path)
    meta = read_model_dir(path, CAS_FORMAT, "CAS encoder")
    try:
        config = CASConfig(**meta["config"])
        model = DualEncoder(config)
        model.load_state_dict(load_file(str(path / "model.safetensors")))
    except (OSError, TypeError, ValueError, RuntimeError) as exc:
        raise EarthgenError(f"{path}: broken CAS encoder ({str(exc).splitlines()[0]})") from None
    return model.eval()


def model_dirs(path: Path) -> list[Path]:
    """`path` itself when it is a model directory (holds config.json), else its subdirectories
    that are: `--cas runs/cas` takes every encoder a stage-cas run wrote."""
    path = Path(path)
    if not path.is_dir():
        raise EarthgenError(f"{path}: no such directory")
    if (path / "config.json").is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / "config.json").is_file())
    if not found:
        raise EarthgenError(f"{path}: holds no model directory (no config.json in it or its subfolders)")
    return found

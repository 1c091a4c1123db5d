"""The one model runtime of inference: a checkpoint loaded once, on its device, in its precision.

`load_runtime` is the one place that turns `--model` (the default model or a checkpoint directory)
into weights, picks the device and the autocast dtype; the tile translator (model_translator.py)
and whole-scene sampling (multidiffusion.py: joint, inpaint, extend) both run on what it returns.
`pad_batch` is the one fixed-batch rule both follow.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np
import torch

from earthgen_cli.errors import EarthgenError, EarthgenWarning
from earthgen_cli.modalities import get_modality

# Tiles per forward pass when --batch-size is not given: small on a CPU (a batch costs its full
# compute even when the last group is padded), larger on a GPU, which is idle below ~16 tiles.
DEFAULT_BATCH = {"cpu": 4, "cuda": 16}
COMPILE_ENV = "EARTHGEN_COMPILE"

T = TypeVar("T")


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise EarthgenError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EarthgenError(f"device {device} requested but CUDA is not available")
    return dev


def resolve_batch_size(batch_size: int | None, device: torch.device) -> int:
    """--batch-size as given, else the device's default (DEFAULT_BATCH); refuses < 1."""
    if batch_size is None:
        return DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])
    if batch_size < 1:
        raise EarthgenError(f"--batch-size must be at least 1, got {batch_size}")
    return batch_size


def pad_batch(items: Sequence[T], batch_size: int) -> list[T]:
    """`items` (1..batch_size of them) filled up to `batch_size` by repeating the last one. Every
    forward pass sees exactly `batch_size` tiles: BLAS kernels pick their blocking from the matrix
    shapes, so a fixed shape is what makes a tile's result bit-identical for one --batch-size,
    however the caller groups its tiles. Another batch size changes only float rounding (README,
    "--batch-size")."""
    items = list(items)
    return items + [items[-1]] * (batch_size - len(items))


def checkpoint_label(path: str | Path) -> str:
    """EARTHGEN_MODEL of a checkpoint: `default@<sha256>` for the model shipped in the package,
    else `<folder name>@<sha256>`; never an install path (io.identity)."""
    from earthgen_cli.inference.default_model import default_model_dir
    from earthgen_cli.io.identity import model_label

    default = Path(path).resolve() == default_model_dir().resolve()
    return model_label(str(path), "default" if default else None)


@dataclass(frozen=True)
class ModelRuntime:
    """A loaded checkpoint (EarthGenModel, EMA weights, eval mode) on its device, with the
    precision inference runs in: fp32 on CPU (bit-reproducible; bf16 has no fast CPU kernels
    here), bf16 autocast on CUDA."""

    model: torch.nn.Module
    info: object  # checkpoint.CheckpointInfo
    path: str  # the resolved checkpoint directory
    device: torch.device
    autocast: torch.dtype | None
    is_default: bool = False  # the model shipped in the package: warn for directions its card does not validate

    @classmethod
    def place(cls, model: torch.nn.Module, info, path: str | Path, device: str = "auto", precision: str = "auto",
              is_default: bool = False) -> "ModelRuntime":
        """A model already in memory (built on CPU in fp32) moved to `device`, with its autocast
        dtype. EARTHGEN_COMPILE=1 wraps the network in torch.compile where it compiles (CUDA with a
        working toolchain); a failure falls back to eager with a warning, and results then match
        eager up to float rounding."""
        dev = pick_device(device)
        if precision not in ("auto", "fp32", "bf16"):
            raise EarthgenError(f"{path}: precision must be auto, fp32 or bf16, not {precision!r}")
        bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
        model = model.to(dev)
        if os.environ.get(COMPILE_ENV, "") == "1":
            try:
                model.scene = torch.compile(model.scene)  # the transformers: where the FLOPs are
                model.generator = torch.compile(model.generator)
            except Exception as exc:  # noqa: BLE001  (no compiler toolchain, unsupported op, ...)
                warnings.warn(f"{COMPILE_ENV}=1 but torch.compile failed ({type(exc).__name__}); running eager",
                              EarthgenWarning, stacklevel=2)
        return cls(model, info, str(path), dev, torch.bfloat16 if bf16 else None, is_default)

    @property
    def cfg(self):
        return self.info.model

    @property
    def native_tile(self) -> int | None:
        """The crop side the model was trained on (a multiple of the tile multiple), if any:
        the tile size its positions and token counts were learned at."""
        from earthgen_cli.checkpoint import native_tile

        return native_tile(self.info)

    @cached_property
    def label(self) -> str:
        """EARTHGEN_MODEL: `default@<sha256>` or `<folder name>@<sha256>` (hashed once)."""
        return checkpoint_label(self.path)

    def text_vector(self, prompt: str | None) -> np.ndarray | None:
        """The prompt's embedding, or a one-line error when the checkpoint has no text condition."""
        if prompt is None:
            return None
        if not self.cfg.text_dim:
            raise EarthgenError(f"--model {self.path}: the checkpoint was trained without text conditioning; "
                                "it cannot follow --prompt")
        from earthgen_cli.text import encode_prompt

        vec = encode_prompt(prompt)
        if vec.shape[0] != self.cfg.text_dim:
            raise EarthgenError(f"--model {self.path}: expects {self.cfg.text_dim}-d text embeddings, "
                                f"the encoder gives {vec.shape[0]}")
        return vec

    def check(self, generate: Sequence[str], conditions: Sequence[str]) -> None:
        """Scene sampling: every slot a modality the checkpoint knows; every two slots a pair it
        trained on; the default model warns for directions its card does not validate."""
        slots = [*generate, *conditions]
        for m in slots:
            get_modality(m)
            if m not in self.cfg.modalities:
                raise EarthgenError(f"--model {self.path}: the checkpoint never saw modality {m}; "
                                    f"it knows {', '.join(self.cfg.modalities)}")
        seen = [set(k.split("+")) for k, n in self.info.pairs_seen.items() if n > 0]
        for a, b in itertools.combinations(slots, 2):
            if not any({a, b} <= s for s in seen):
                known = ", ".join(sorted(self.info.pairs_seen)) or "none"
                raise EarthgenError(f"--model {self.path}: the checkpoint never saw the pair {a}+{b} "
                                    f"in training (pairs seen: {known})")
        if self.is_default:
            for warning in unvalidated_warnings(generate, conditions):
                warnings.warn(warning, EarthgenWarning, stacklevel=2)


def unvalidated_warnings(generate: Sequence[str], conditions: Sequence[str]) -> list[str]:
    """The default model's card judges translation directions (evaluate): a generated modality
    with conditions is the direction conditions -> it; one without is not judged at all."""
    from earthgen_cli.inference.default_model import unvalidated_warning

    if not conditions:
        return [f"the default model is not validated for generating {'+'.join(generate)} without a "
                f"condition (its card judges translation directions only; see docs/evaluation.md)"]
    return [w for w in (unvalidated_warning(list(conditions), g) for g in generate) if w]


def load_runtime(spec: str | Path | None, device: str = "auto", precision: str = "auto") -> ModelRuntime:
    """`--model`: None or `default` (the model shipped in the package) or a checkpoint directory,
    loaded with its EMA weights onto `device`."""
    from earthgen_cli.checkpoint import load_model
    from earthgen_cli.inference.default_model import DEFAULT, require_default_model

    is_default = spec is None or spec == DEFAULT
    path = require_default_model() if is_default else Path(spec)
    if not path.exists():
        raise EarthgenError(f"--model {spec}: no such checkpoint directory")
    model, info = load_model(path, ema=True)
    return ModelRuntime.place(model, info, path if is_default else spec, device, precision, is_default)

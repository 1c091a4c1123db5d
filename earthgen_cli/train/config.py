"""Training configuration: frozen dataclasses (the source of truth) loaded from YAML in configs/
with `--set key=value` overrides; unknown keys and wrong types are one-line errors naming the file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from earthgen_cli.errors import EarthgenError
from earthgen_cli.text import TEXT_DIM
from earthgen_cli.models.config import PRESETS, ModelConfig, model_config
from earthgen_cli.strict_config import from_mapping, to_mapping


class Stage(str, enum.Enum):
    codec = "codec"  # train the per-modality KL autoencoders
    flow = "flow"  # the unified flow model + adapters, codecs frozen
    unet = "unet"  # evaluation baseline: a pix2pix-style U-Net per direction (L1)
    cas = "cas"  # evaluation metric: a CLIP-style dual encoder per modality pair (InfoNCE)


class Precision(str, enum.Enum):
    auto = "auto"  # bf16 autocast where the device supports it (CUDA, and CPUs with bf16 matmul)
    fp32 = "fp32"
    bf16 = "bf16"


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # a built dataset directory (earthgen build-dataset); paths are relative to the CWD
    split: str = "train"
    modalities: tuple[str, ...] = ()  # () = every modality of the dataset
    pairs: tuple[str, ...] = ()  # "rgb+nir", ...: the modality pairs batches are drawn from; () = every pair present
    crop: int = 0  # random square crop side in px; 0 = the whole chip
    augment: bool = True  # random flips and 90-degree rotations (the same for every slot)
    pseudo_pan: float = 0.0  # P(a batch with rgb but no pan gets a pan slot from RGB luminance)
    max_chips: int = 0  # train on the first N chips only (0 = all): overfitting checks
    # chips whose content flags contain any of these words (case-insensitive) are never drawn:
    # [cloud, snow] keeps cloudy scenes (another sensor's scaling, a cloud's NIR) out of the pairs
    exclude_flags: tuple[str, ...] = ()
    # how a batch's chips are drawn among those holding its pair: "chip" (uniformly) or "scene"
    # (each scene equally often, then a chip of it: a large scene no longer outweighs many small ones)
    balance: str = "chip"
    workers: int = 0  # DataLoader worker processes
    text: bool = False  # condition on the chips' captions (build-dataset `captions:`; the [text] extra)
    in_memory: bool = True  # read the split's chips into RAM once (fast); false: one zarr read per chip


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 1000
    batch_size: int = 8  # per process and micro-step
    accum: int = 1  # micro-steps per optimizer step
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup: int = 100  # linear warmup steps, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    clip: float = 1.0  # gradient norm clip; 0 = off
    ema: float = 0.999
    precision: Precision = Precision.auto
    # learning-rate multiplier of the direct source-to-target parts (model.pixel_path and
    # model.aligned_skip): grown at zero on a trained model, at the base rate they stayed near zero
    direct_lr_mult: float = 1.0


@dataclass(frozen=True)
class FlowConfig:
    modes: tuple[float, float, float] = (0.3, 0.6, 0.1)  # P(joint), P(conditional), P(dropped)
    time_mean: float = 0.0  # logit-normal mean of the slot times; > 0 trains more at high noise
    time_uniform: float = 0.0  # fraction of slot times drawn uniformly in (0, 1) (covers low noise too)
    time_one: float = 0.0  # fraction of slot times set to exactly 1: trains the mean estimate's x0 at t=1
    cond_drop: float = 0.1  # P(dropping GSD/text) per sample: enables guidance on them
    lambda_sc: float = 0.1  # scene-consistency InfoNCE weight (MetaEarth-MM eq. 19)
    lambda_calib: float = 1.0  # adapter calibration weight (Any2Any)
    beta_nll: float = 0.5  # beta of the confidence head's beta-NLL
    codec_from: str = ""  # codec-stage checkpoint for kl codecs (required with a kl codec)
    init_from: str = ""  # flow checkpoint whose weights start this run (fine-tuning; fresh optimizer and schedule)
    train_only: tuple[str, ...] = ()  # parameter-name prefixes to train (e.g. generator.pixel.); () = all
    # > 0: each sample's flow loss is weighted by 1 / (its target's spatial variance + chip_norm), a
    # weighted mean over the batch: the loss scored per chip, as the evaluation's PSNR over the
    # reference chip's own range is (a flat Sentinel-2 chip counts as much as a contrasty aerial one)
    chip_norm: float = 0.0
    # > 0: that fraction of the batches are masked-slot batches (flow.path.mask_slot_times): one
    # slot known outside a random rectangle of tokens, noisy inside, half of them with the other
    # slot dropped from the batch (plain inpainting), half with it clean (inpainting guided by
    # another modality). Needs model.token_times: the model learns to fill a hole from the known
    # tokens around it. 0 draws nothing: runs without it stay bit-identical.
    masked: float = 0.0


@dataclass(frozen=True)
class CodecTrainConfig:
    kl_weight: float = 1e-6  # KL term of the VAE loss (small: a near-deterministic latent)
    l1_weight: float = 1.0  # reconstruction is L1 + MSE (no LPIPS backbone offline)


@dataclass(frozen=True)
class UNetTrainConfig:
    directions: tuple[str, ...] = ()  # "sar:rgb", ...; () = every direction the split holds
    base_channels: int = 32
    dropout: float = 0.0


@dataclass(frozen=True)
class CASTrainConfig:
    pairs: tuple[str, ...] = ()  # "rgb+sar", ...; () = every modality pair the split holds
    width: int = 32
    depth: int = 4
    embed_dim: int = 128


@dataclass(frozen=True)
class RunConfig:
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    save_every: int = 100
    keep_last: int = 3
    sample_every: int = 0  # sample grid PNG interval (0 = only at the end)
    progress: bool = True


@dataclass(frozen=True)
class TrainConfig:
    stage: Stage = Stage.flow
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny"})  # preset + ModelConfig overrides
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    flow: FlowConfig = FlowConfig()
    codec: CodecTrainConfig = CodecTrainConfig()
    unet: UNetTrainConfig = UNetTrainConfig()
    cas: CASTrainConfig = CASTrainConfig()
    run: RunConfig = RunConfig()


MODEL_FROM_DATA = ("modalities", "bands", "preset")


def build_model_config(cfg: TrainConfig, modalities: Sequence[str], bands: dict[str, int], where: str) -> ModelConfig:
    """The preset, its overrides from `model:`, the dataset's modalities and band counts, and the
    text condition's size from `data.text`."""
    section = dict(cfg.model)
    preset = section.pop("preset", "tiny")
    if preset not in PRESETS:
        raise EarthgenError(f"{where}: model.preset is {preset!r}; expected one of {', '.join(PRESETS)}")
    for key in MODEL_FROM_DATA:
        if key in section:
            raise EarthgenError(f"{where}: model.{key} comes from the dataset, do not set it")
    if "text_dim" in section:
        raise EarthgenError(f"{where}: model.text_dim comes from data.text (true: {TEXT_DIM}), do not set it")
    base = to_mapping(model_config(preset, tuple(modalities), bands))
    base["text_dim"] = TEXT_DIM if cfg.data.text else 0
    if isinstance(section.get("codec"), dict):
        section["codec"] = {**base["codec"], **section["codec"]}
    return from_mapping(ModelConfig, {**base, **section}, where, prefix="model.")


def _parse_set(item: str) -> tuple[list[str], Any]:
    import yaml

    if "=" not in item:
        raise EarthgenError(f"--set {item!r}: expected key=value")
    key, value = item.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise EarthgenError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise EarthgenError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise EarthgenError(f"{path}: a training config must be a mapping")
    for item in overrides:
        keys, value = _parse_set(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise EarthgenError(f"--set {item}: {k} is not a section")
        node[keys[-1]] = value
    cfg = from_mapping(TrainConfig, raw, str(path))
    check(cfg, str(path))
    return cfg


def check(cfg: TrainConfig, where: str) -> None:
    o = cfg.optim
    if min(o.steps, o.batch_size, o.accum) < 1 or o.lr <= 0 or not 0 <= o.ema < 1:
        raise EarthgenError(f"{where}: optim needs steps, batch_size, accum >= 1, lr > 0 and 0 <= ema < 1")
    if o.direct_lr_mult <= 0:
        raise EarthgenError(f"{where}: optim.direct_lr_mult must be > 0")
    if min(cfg.run.save_every, cfg.run.log_every) < 1 or cfg.run.keep_last < 1:
        raise EarthgenError(f"{where}: run.save_every, run.log_every and run.keep_last must be >= 1")
    for name in ("time_uniform", "time_one", "masked"):
        if not 0.0 <= getattr(cfg.flow, name) <= 1.0:
            raise EarthgenError(f"{where}: flow.{name} must be in [0, 1] (a fraction of the slot times)")
    if cfg.flow.masked > 0 and not cfg.model.get("token_times", False):
        raise EarthgenError(f"{where}: flow.masked trains per-token times: set model.token_times: true")
    if any(p < 0 for p in cfg.flow.modes) or sum(cfg.flow.modes) <= 0:
        raise EarthgenError(f"{where}: flow.modes must be three non-negative weights, not all zero")
    if cfg.data.balance not in ("chip", "scene"):
        raise EarthgenError(f"{where}: data.balance must be chip or scene, not {cfg.data.balance!r}")
    if not cfg.data.root:
        raise EarthgenError(f"{where}: data.root (a built dataset directory) is required")
    # Catch model overrides that are wrong before any data is read.
    build_model_config(cfg, ("rgb",), {"rgb": 3}, where)

"""Checkpoint directories (DESIGN.md): config.json + model.safetensors + ema.safetensors
[+ train_state.pt]. Inference reads only the JSON and the safetensors; nothing is pickled.

A checkpoint is written under a temporary name and renamed when complete, so a run killed while
saving leaves at most a `*.tmp` directory that resume and `newest_checkpoint` ignore.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.modalities import BandScaling
from earthgen_cli.models.config import ModelConfig
from earthgen_cli.models.earthgen import EarthGenModel, count_parameters
from earthgen_cli.strict_config import from_mapping, to_mapping

FORMAT = "earthgen-checkpoint"
VERSION = 1
WEIGHT_FILES = ("model.safetensors", "ema.safetensors")


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything config.json holds besides the weights."""

    model: ModelConfig
    scaling: dict[str, BandScaling]  # dataset-level raw <-> model-space map per modality
    latent_stats: dict[str, dict[str, list[float]]]  # codec latent shift/scale per modality
    pairs_seen: dict[str, int]  # "rgb+sar" -> training samples drawn of that pair
    stage: str
    step: int
    train_config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        from earthgen_cli import __version__

        return {
            "format": FORMAT, "version": VERSION, "earthgen_version": __version__,
            "stage": self.stage, "step": self.step, "model": to_mapping(self.model),
            "scaling": {m: s.to_json() for m, s in self.scaling.items()},
            "latent_stats": self.latent_stats, "pairs_seen": self.pairs_seen,
            "train_config": self.train_config,
        }


def _state(model: torch.nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = model if isinstance(model, dict) else model.state_dict()
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def write_model_dir(path: Path, config: dict[str, Any],
                    weights: dict[str, torch.nn.Module | dict[str, torch.Tensor]],
                    extra: Callable[[Path], None] | None = None) -> Path:
    """Publish a model directory atomically: `config.json` plus one `NAME.safetensors` per entry
    of `weights` (a module or a state dict), written under a temporary sibling, made durable, then renamed into place.
    `extra(tmp)` may add more files first. Checkpoints and CAS encoders share this layout."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name, module in weights.items():
        save_file(_state(module), str(tmp / f"{name}.safetensors"))
    if extra is not None:
        extra(tmp)
    for f in tmp.iterdir():  # make the files durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def native_tile(info: "CheckpointInfo") -> int | None:
    """The crop side a checkpoint was trained on, when it fits the model's tile multiple: the
    size its positions and token counts were learned at, and the default tile of inference."""
    crop = int((info.train_config.get("data") or {}).get("crop", 0) or 0)
    multiple = info.model.codec.factor * info.model.patch
    return crop if crop > 0 and crop % multiple == 0 else None


def read_model_dir(path: Path, fmt: str, what: str) -> dict[str, Any]:
    """The config.json of a model directory that `write_model_dir` published with
    {"format": fmt}; a one-line error naming `what` it should have been otherwise."""
    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EarthgenError(f"{path}: not a {what} ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise EarthgenError(f"{path}: not a {what} (config.json format is not {fmt})")
    return meta


def save_checkpoint(path: Path, info: CheckpointInfo, model: EarthGenModel, ema: EarthGenModel,
                    train_state: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint directory `path` atomically (temporary sibling, then rename)."""
    extra = None
    if train_state is not None:
        extra = lambda tmp: torch.save(train_state, tmp / "train_state.pt")  # noqa: E731
    return write_model_dir(path, info.to_json(), {"model": model, "ema": ema}, extra)


def read_info(path: Path) -> CheckpointInfo:
    path = Path(path)
    if not path.is_dir():
        raise EarthgenError(f"{path}: not a checkpoint directory")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise EarthgenError(f"{path}: missing config.json; not an earthgen checkpoint")
    try:
        raw = json.loads(cfg_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EarthgenError(f"{cfg_file}: unreadable JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise EarthgenError(f"{cfg_file}: not an earthgen checkpoint config (format != {FORMAT})")
    if raw.get("version") != VERSION:
        raise EarthgenError(f"{cfg_file}: checkpoint version {raw.get('version')} is not {VERSION}")
    where = str(cfg_file)
    try:
        model = from_mapping(ModelConfig, raw["model"], where, prefix="model.")
        scaling = {m: BandScaling.from_json(s) for m, s in raw["scaling"].items()}
        info = CheckpointInfo(model, scaling, dict(raw["latent_stats"]), dict(raw.get("pairs_seen", {})),
                              str(raw["stage"]), int(raw["step"]), dict(raw.get("train_config", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise EarthgenError(f"{where}: malformed checkpoint config ({exc!s})") from None
    for m in model.modalities:
        if m not in scaling or scaling[m].bands != model.bands[m]:
            raise EarthgenError(f"{where}: scaling for {m} missing or not {model.bands[m]} bands")
    return info


def _read_safetensors(file: Path, read: Callable[[str], Any]) -> Any:
    """`read(path)` on a safetensors file, its absence or damage as one-line errors."""
    from safetensors import SafetensorError

    if not file.is_file():
        raise EarthgenError(f"{file.parent}: missing {file.name}")
    try:
        return read(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise EarthgenError(f"{file}: unreadable safetensors file ({exc})") from None


def _header_shapes(path: str) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def _prefixes(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) and value else tuple(p for p in value if p)


def load_weights(module: torch.nn.Module, file: Path, new: str | tuple[str, ...] = "",
                 fresh: str | tuple[str, ...] = "", widen: str | tuple[str, ...] = "") -> None:
    """Every tensor of `module` from `file`, shapes checked; tensors whose names start with `new`
    (a prefix or several: parts the file's model did not have) may be missing and keep their
    initial values. The file's tensors under `fresh` are ignored and the module's own initial
    values kept (a part the new model builds differently). Convolution weights under `widen` may
    have fewer input channels in the file: they fill the first ones, the rest are zero (inputs the
    file's model did not read, so the module computes what it did)."""
    from safetensors.torch import load_file

    state = _read_safetensors(file, load_file)
    expected = module.state_dict()
    new, fresh = _prefixes(new), _prefixes(fresh)
    if fresh:
        state = {k: v for k, v in state.items() if not k.startswith(fresh)}
        new += fresh
    if new:
        state = {**{k: v for k, v in expected.items() if k.startswith(new) and k not in state}, **state}
    widen = _prefixes(widen)  # () matches no name
    for k in [k for k in state if k in expected and k.startswith(widen)]:
        v, e = state[k], expected[k]
        if v.dim() == 4 and v.shape[0] == e.shape[0] and v.shape[2:] == e.shape[2:] and v.shape[1] < e.shape[1]:
            state[k] = torch.cat([v.to(e.dtype), e.new_zeros(e.shape[0], e.shape[1] - v.shape[1], *e.shape[2:])], 1)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"lacks tensor {missing[0]}" if missing else f"has unexpected tensor {unexpected[0]}"
        raise EarthgenError(f"{file}: {what}; it does not match config.json")
    for k, v in expected.items():
        if state[k].shape != v.shape:
            raise EarthgenError(f"{file}: tensor {k} has shape {tuple(state[k].shape)}, "
                                f"config.json expects {tuple(v.shape)}")
    module.load_state_dict(state)


def check_weight_shapes(info: CheckpointInfo, file: Path) -> None:
    """The tensors config.json declares against those the safetensors header lists, before any
    weight is allocated: a damaged config cannot make us build a model larger than its file."""
    stored = _read_safetensors(file, _header_shapes)
    with torch.device("meta"):
        declared = {k: tuple(v.shape) for k, v in EarthGenModel(info.model).state_dict().items()}
    if declared != stored:
        n_declared = sum(math.prod(s) for s in declared.values())
        n_stored = sum(math.prod(s) for s in stored.values())
        first = next((k for k in declared if declared[k] != stored.get(k)), None)
        detail = (f"tensor {first}: {declared[first]} declared, {stored.get(first, 'absent')} stored" if first
                  else f"tensor {next(k for k in stored if k not in declared)} is not in the model")
        raise EarthgenError(f"{file.parent / 'config.json'}: declares a model of {n_declared:,} parameters in "
                            f"{len(declared)} tensors; {file.name} holds {n_stored:,} in {len(stored)} "
                            f"({detail})")


def build_model(info: CheckpointInfo) -> EarthGenModel:
    model = EarthGenModel(info.model)
    for m, stats in info.latent_stats.items():
        if m in model.codecs:
            model.codecs[m].set_latent_stats(stats["shift"], stats["scale"])
    return model


def load_model(path: Path, ema: bool = True) -> tuple[EarthGenModel, CheckpointInfo]:
    """The model (EMA weights by default) on CPU in fp32, in eval mode, from JSON + safetensors only."""
    info = read_info(path)
    weights = Path(path) / ("ema.safetensors" if ema else "model.safetensors")
    check_weight_shapes(info, weights)
    model = build_model(info)
    load_weights(model, weights)
    return model.eval().requires_grad_(False), info


def load_into(path: Path, model: EarthGenModel, ema_model: EarthGenModel) -> dict[str, Any]:
    """Resume: both weight files into existing modules, and the train state (weights_only)."""
    path = Path(path)
    load_weights(model, path / "model.safetensors")
    load_weights(ema_model, path / "ema.safetensors")
    state_file = path / "train_state.pt"
    if not state_file.is_file():
        raise EarthgenError(f"{path}: missing train_state.pt; cannot resume from it")
    return torch.load(state_file, map_location="cpu", weights_only=True)


def is_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in ("config.json", *WEIGHT_FILES, "train_state.pt"))


def newest_checkpoint(directory: Path) -> Path | None:
    """The highest-step complete `step_N` directory under `directory`, or None."""
    found = []
    for p in Path(directory).glob("step_*"):
        if p.suffix == ".tmp" or not p.name[5:].isdigit() or not is_complete(p):
            continue
        found.append((int(p.name[5:]), p))
    return max(found)[1] if found else None


def prune_checkpoints(directory: Path, keep: int) -> None:
    steps = sorted((int(p.name[5:]), p) for p in Path(directory).glob("step_*") if p.name[5:].isdigit())
    for _, p in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def describe_checkpoint(path: str | Path) -> str:
    """Multi-line text for `earthgen info CKPT`: modalities, pairs seen, preset, size, steps."""
    info = read_info(Path(path))
    cfg = info.model
    with torch.device("meta"):  # counts without allocating or reading weights
        model = EarthGenModel(cfg)
    total, codecs = count_parameters(model), count_parameters(model.codecs)
    bands = ", ".join(f"{m} ({cfg.bands[m]} bands)" for m in cfg.modalities)
    pairs = ", ".join(f"{k} ({v})" for k, v in sorted(info.pairs_seen.items())) or "none"
    lines = [
        f"checkpoint: {path}",
        f"stage: {info.stage}, step {info.step}",
        f"preset: {cfg.preset} (hidden {cfg.hidden}, {cfg.scene_depth} scene + {cfg.gen_depth} generator blocks, "
        f"patch {cfg.patch}, predicts {cfg.target.value})",
        f"codec: {cfg.codec.kind.value}, factor {cfg.codec.factor}; tile sides must be multiples of {cfg.tile_multiple}",
        f"modalities: {bands}",
        f"pairs seen in training (samples): {pairs}",
        f"parameters: {total:,} ({total - codecs:,} flow model, {codecs:,} codecs)",
        f"conditions: gsd {'on' if cfg.gsd else 'off'}, text {cfg.text_dim or 'off'}, "
        f"confidence head {'on' if cfg.confidence else 'off'}, adapters {'on' if cfg.adapter_hidden else 'off'}",
        "inpaint/extend: " + (f"known tokens given clean (masked-slot trained), context path {cfg.context_path or 'off'}"
                              + (" reading a classical fill (--fill blend, coherence or harmonic)"
                                 if cfg.context_fill else "")
                              if cfg.token_times else "known cells re-imposed on their noise path (RePaint)"),
    ]
    return "\n".join(lines)


def export_model(checkpoint: Path, out: Path, half: bool = False, card: Callable[[], dict] | None = None,
                 overwrite: bool = False) -> Path:
    """`earthgen export CKPT -o DIR`: an inference-only copy of a checkpoint.

    Keeps config.json and the EMA weights (what inference loads), drops `model.safetensors` and
    `train_state.pt`, and with `half` stores the floating-point parameters as float16 (they load
    back into float32 modules; buffers such as latent statistics stay float32). `card` makes the
    `card.json` to write beside them (`evaluate.card.card_from_report`); it is called once the
    checkpoint has loaded. This is how `earthgen_cli/weights/default/` is made.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and not overwrite:
        raise EarthgenError(f"{out}: exists; use --overwrite to replace it")
    if out.resolve() == checkpoint.resolve():
        raise EarthgenError(f"{out}: is the checkpoint itself; export to another directory")
    read_info(checkpoint)  # one-line errors for a broken config.json
    model, _ = load_model(checkpoint, ema=True)
    card_json = card() if card is not None else None
    config = json.loads((checkpoint / "config.json").read_text())
    state = model.state_dict()
    if half:  # float16 parameters, float32 buffers (latent statistics)
        params = {name for name, _ in model.named_parameters()}
        state = {k: (v.half() if k in params and v.is_floating_point() else v) for k, v in state.items()}

    def add_card(tmp: Path) -> None:
        if card_json is not None:
            (tmp / "card.json").write_text(json.dumps(card_json, indent=2) + "\n")

    out.parent.mkdir(parents=True, exist_ok=True)
    return write_model_dir(out, config, {"ema": state}, extra=add_card)

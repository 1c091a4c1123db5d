"""The default model that ships inside the package (`earthgen_cli/weights/default/`).

A checkpoint directory like any other (config.json + ema.safetensors, weights stored in float16
to stay small; they load into float32 modules), plus `card.json`: the directions the model is
validated for (it beat the `mean` baseline on PSNR on held-out chips, see MODEL_CARD.md) and
the evaluation numbers behind that claim. `--model default` (the default of `translate`) loads
it; other directions still run, with a warning that they are not validated.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from earthgen_cli.errors import EarthgenError

DEFAULT = "default"


def default_model_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "weights" / DEFAULT


def require_default_model() -> Path:
    path = default_model_dir()
    if not (path / "config.json").is_file() or not (path / "ema.safetensors").is_file():
        raise EarthgenError(f"the default model is not installed ({path} is missing); pass --model "
                            f"CHECKPOINT, or identity/luminance")
    return path


@lru_cache(maxsize=1)
def default_card() -> dict:
    """card.json of the default model: {"validated": ["rgb:pan", ...], "evaluation": {...}}."""
    path = require_default_model() / "card.json"
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EarthgenError(f"{path}: unreadable model card ({exc})") from None
    return card if isinstance(card, dict) else {}


def validated_directions() -> list[str]:
    return [str(d) for d in default_card().get("validated", [])]


def unvalidated_warning(sources: list[str], target: str) -> str | None:
    """A one-line warning when no source -> target direction of the request is validated."""
    keys = [f"{s}:{target}" for s in sources]
    valid = set(validated_directions())
    if any(k in valid for k in keys):
        return None
    shown = ", ".join(k.replace(":", "->") for k in keys)
    return (f"warning: the default model is not validated for {shown} (it did not beat a mean image on "
            f"held-out chips; see MODEL_CARD.md); validated: "
            f"{', '.join(k.replace(':', '->') for k in sorted(valid)) or 'none'}")


def describe_default_model(as_json: bool = False) -> str:
    """`earthgen info default`: the checkpoint description plus what the model is validated for,
    with the PSNR of the model and of the mean baseline on held-out chips per direction."""
    from earthgen_cli.train.checkpoint import describe_checkpoint

    path, card = require_default_model(), default_card()
    if as_json:
        return json.dumps({"path": str(path), **card}, indent=2)
    lines = [f"default model: {path}", describe_checkpoint(path)]
    scores = card.get("evaluation", {}).get("psnr", {})
    lines.append("validated directions (held-out PSNR dB, model vs mean image):")
    for key in card.get("validated", []):
        row = scores.get(key, {})
        lines.append(f"  {key.replace(':', ' -> ')}: {row.get('unified', float('nan')):.2f} vs "
                     f"{row.get('mean', float('nan')):.2f}")
    others = [k for k in scores if k not in card.get("validated", [])]
    if others:
        lines.append(f"not validated (runs, with a warning): {', '.join(k.replace(':', '->') for k in others)}")
    return "\n".join(lines)

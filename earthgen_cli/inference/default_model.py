"""The default model that ships inside the package (`earthgen_cli/weights/default/`).

A checkpoint directory like any other (config.json + ema.safetensors, weights stored in float16
to stay small; they load into float32 modules), plus `card.json` (`earthgen export --report`): per
direction the held-out numbers of the claim rule (earthgen_cli/claims.py, docs/evaluation.md) and its
verdict. A direction counts as validated only when the rule, applied again to the card's numbers,
passes; a card written before the rule (no oracle-mean, shuffled-source or correlation numbers)
validates nothing. `--model default` (the default of `translate`) loads it; other directions still
run, with a warning naming the condition that failed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from earthgen_cli.claims import judge_card
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


LEGACY = ("its card.json predates the claim rule (no oracle-mean, shuffled-source or correlation "
          "numbers); re-run earthgen evaluate and earthgen export --report")


@lru_cache(maxsize=1)
def default_card() -> dict:
    """card.json of the default model: {"rule", "validated", "directions": {key: numbers and
    verdict}, "evaluation": {...}}."""
    path = require_default_model() / "card.json"
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EarthgenError(f"{path}: unreadable model card ({exc})") from None
    return card if isinstance(card, dict) else {}


def card_claims(card: dict | None = None) -> dict:
    """key -> Claim, the claim rule judged again on the numbers each card entry holds."""
    return judge_card(default_card() if card is None else card)


def validated_directions() -> list[str]:
    return [k for k, c in card_claims().items() if c.validated]


def unvalidated_warning(sources: list[str], target: str) -> str | None:
    """A one-line warning (the text of an EarthgenWarning) when no source -> target direction of
    the request is validated, naming the conditions of the claim rule that failed."""
    keys = [f"{s}:{target}" for s in sources]
    claims = card_claims()
    if any(k in claims and claims[k].validated for k in keys):
        return None
    shown = ", ".join(k.replace(":", "->") for k in keys)
    if "directions" not in default_card():
        why = LEGACY
    else:
        why = "; ".join(f"{k.replace(':', '->')}: " + ("; ".join(claims[k].failed) if k in claims
                                                         else "not evaluated") for k in keys)
    valid = sorted(k for k, c in claims.items() if c.validated)
    return (f"the default model is not validated for {shown} ({why}; see docs/evaluation.md); "
            f"validated: {', '.join(k.replace(':', '->') for k in valid) or 'none'}")


def describe_default_model(as_json: bool = False) -> str:
    """`earthgen info default`: the checkpoint description plus the claim rule's verdict per
    direction, with the held-out numbers behind it."""
    from earthgen_cli.checkpoint import describe_checkpoint

    path, card = require_default_model(), default_card()
    if as_json:
        from earthgen_cli.inference.describe_model import checkpoint_summary

        return json.dumps({**checkpoint_summary(path), **card}, indent=2)
    lines = [f"default model: {path}", describe_checkpoint(path)]
    claims = card_claims(card)
    if "directions" not in card:
        lines.append(f"validated directions: none ({LEGACY})")
        return "\n".join(lines)
    lines.append("validated directions (held-out PSNR dB on the reference chip's range, corr):")
    for key, c in claims.items():
        if c.validated:
            m = c.estimate or ""
            lines.append(f"  {key.replace(':', ' -> ')}: {m} {c.psnr.get(m, float('nan')):.2f} dB, corr "
                         f"{c.corr.get(m, float('nan')):.2f}; oracle-mean {c.psnr.get('oracle-mean', float('nan')):.2f}"
                         f" dB; {c.chips} chips, {c.scenes} scenes")
    others = [f"{k.replace(':', '->')} ({'; '.join(c.failed)})" for k, c in claims.items() if not c.validated]
    if others:
        lines.append(f"not validated (runs, with a warning): {', '.join(others)}")
    return "\n".join(lines)

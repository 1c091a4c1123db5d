"""`--model SPEC` to a translator: `identity` / `luminance` (translator.py), `default` (the model
shipped in the package, default_model.py) or a checkpoint directory (model_translator.py).

It sits above the interface and both of its implementations, so that the interface module never
imports the model runtime (no cycle between translator.py and model_translator.py); the model
runtime (torch) is imported only when a checkpoint is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.default_model import DEFAULT
from earthgen_cli.inference.translator import ANALYTIC_TRANSLATORS, Translator


def load_translator(spec: str | None, device: str = "auto", batch_size: int | None = None,
                    **options: Any) -> Translator:
    """`identity`, `luminance`, `default` (the model shipped in the package) or a checkpoint
    directory (the unified model).

    `batch_size`: tiles per forward pass of a checkpoint model (None: its device's default); the
    analytic translators take whatever the engine reads. `options` (steps, sampler, guidance, ...)
    are sampling settings of a checkpoint model; None values are left at the model's defaults. The
    analytic translators take none."""
    options = {k: v for k, v in options.items() if v is not None}
    if spec is None:
        raise EarthgenError("no --model given and no default model is installed")
    if spec in ANALYTIC_TRANSLATORS:
        if options:
            names = ", ".join(f"--{k}" for k in sorted(options))
            raise EarthgenError(f"{names}: sampling options apply to a checkpoint model, not --model {spec}")
        return ANALYTIC_TRANSLATORS[spec]()
    if spec != DEFAULT and not Path(spec).exists():
        raise EarthgenError(
            f"{spec}: no such model; use default, identity, luminance or a checkpoint directory"
        )
    from earthgen_cli.inference.model_translator import ModelTranslator  # torch: only for a checkpoint

    # the default model is resolved (and its unvalidated directions warned about) by the runtime
    return ModelTranslator.load(spec if spec == DEFAULT else Path(spec), device=device, batch_size=batch_size,
                                **options)

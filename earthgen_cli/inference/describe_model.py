"""`earthgen info CKPT --json`: a checkpoint described for scripts.

The same facts as the text of `checkpoint.describe_checkpoint`, plus the identity outputs
and reports name it by (`model`: `name@<sha256>`, io.identity) and the tile it was trained at.
Read from config.json alone: the parameters are counted on the meta device, no weights loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def checkpoint_summary(path: str | Path) -> dict[str, Any]:
    import torch

    from earthgen_cli.inference.runtime import checkpoint_label
    from earthgen_cli.models.earthgen import EarthGenModel, count_parameters
    from earthgen_cli.checkpoint import native_tile, read_info

    info = read_info(Path(path))
    cfg = info.model
    with torch.device("meta"):
        model = EarthGenModel(cfg)
    label = checkpoint_label(path)
    return {
        "path": str(Path(path).resolve()), "model": label, "sha256": label.rsplit("@", 1)[1],
        "stage": info.stage, "step": info.step, "preset": cfg.preset,
        "architecture": {"hidden": cfg.hidden, "scene_blocks": cfg.scene_depth, "generator_blocks": cfg.gen_depth,
                         "patch": cfg.patch, "predicts": cfg.target.value},
        "codec": {"kind": cfg.codec.kind.value, "factor": cfg.codec.factor},
        "tile_multiple": cfg.tile_multiple, "native_tile": native_tile(info),
        "modalities": {m: cfg.bands[m] for m in cfg.modalities},
        "pairs_seen": dict(sorted(info.pairs_seen.items())),
        "parameters": {"total": count_parameters(model), "codecs": count_parameters(model.codecs)},
        "conditions": {"gsd": bool(cfg.gsd), "text_dim": cfg.text_dim or None, "confidence": bool(cfg.confidence),
                       "adapters": bool(cfg.adapter_hidden)},
    }

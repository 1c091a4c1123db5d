"""A built dataset's normalisation statistics per modality: robust percentile range, mean and std
from the band sums sampled on the train split, or the modality registry's default without train
chips."""

from __future__ import annotations

import numpy as np

from earthgen_cli.io.scene_chips import BandSums
from earthgen_cli.modalities import default_scaling, get_modality

PERCENTILES = (1.0, 99.0)  # robust normalisation range (DESIGN.md: robust percentiles)


def normalisation(sums: dict[str, BandSums], bands: dict[str, int],
                  dtypes: dict[str, str]) -> dict[str, dict]:
    out = {}
    for name in bands:
        s = sums.get(name)
        if s is None or not s.samples:
            scale = default_scaling(name, bands[name], dtypes.get(name))
            out[name] = {"low": list(scale.low), "high": list(scale.high), "mean": None,
                         "std": None, "from": "registry default (no train chips)"}
            continue
        values = np.concatenate(s.samples, axis=1)
        log = get_modality(name).log_scale  # percentiles of log1p(raw): see Modality.log_scale
        low, high = np.percentile(np.log1p(np.maximum(values, 0)) if log else values, PERCENTILES, axis=1)
        high = np.where(high > low, high, low + (0.01 if log else 1.0))  # a constant band still maps to a range
        mean = s.total / np.maximum(s.count, 1)
        std = np.sqrt(np.maximum(s.total_sq / np.maximum(s.count, 1) - mean ** 2, 0.0))
        out[name] = {"low": low.tolist(), "high": high.tolist(), "mean": mean.tolist(),
                     "std": std.tolist(), "percentiles": list(PERCENTILES),
                     "samples": int(values.shape[1]), "from": "train split"}
        if log:
            out[name]["log"] = True  # low/high are log1p(raw); mean/std stay in raw units
    return out

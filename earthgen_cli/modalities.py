"""The six modalities: bands, units, dtypes, default value ranges, and the one mapping between
raw values (the units in the files) and model space (roughly [-1, 1]).

Normalisation is per modality and band from dataset-level statistics (DESIGN.md); the ranges here
are only defaults for rasters that come without a dataset or checkpoint (analytic translators,
`earthgen info`). Never normalise per tile or per image: that makes seams.

Everything here works on NumPy arrays and on torch tensors alike (no torch import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from earthgen_cli.errors import EarthgenError


@dataclass(frozen=True)
class Modality:
    name: str
    bands: tuple[str, ...]  # default band names, in order
    min_bands: int
    units: str
    dtype: str  # default dtype when earthgen writes this modality from another one
    value_range: tuple[tuple[float, float], ...]  # default raw (low, high) per band
    resampling: str  # rasterio Resampling name used when this modality is warped
    description: str = ""
    uint8_range: tuple[float, float] = (0.0, 255.0)  # default range for 8-bit imagery
    # Dataset normalisation works on log1p(raw) instead of raw (BandScaling.log). One modality mixes
    # sensors whose values differ by orders of magnitude (8-bit imagery 40-220, Sentinel-2
    # reflectance x10000 100-3000, Landsat DN 6000-15000): a linear range wide enough for all of
    # them squeezed a Sentinel-2 chip into ~5 % of [-1, 1], where ignoring the source cost the flow
    # loss almost nothing. On the log scale each sensor keeps a usable share of the range.
    log_scale: bool = False

    @property
    def max_bands(self) -> int:
        return len(self.bands)

    def accepts_band_count(self, n: int) -> bool:
        return self.min_bands <= n <= self.max_bands


MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality("rgb", ("red", "green", "blue"), 3, "reflectance x10000", "uint16",
                 ((0.0, 3000.0),) * 3, "bilinear",
                 "Sentinel-2 B4,B3,B2 reflectance x10000 (uint16) or 8-bit imagery", log_scale=True),
        Modality("sar", ("VV", "VH"), 1, "dB", "float32",
                 ((-25.0, 5.0), (-32.0, -5.0)), "bilinear",
                 "Sentinel-1 sigma0 in dB (float32); linear intensity is converted to dB"),
        Modality("nir", ("nir",), 1, "reflectance x10000", "uint16",
                 ((0.0, 5000.0),), "bilinear", "Sentinel-2 B8, WorldView NIR", log_scale=True),
        Modality("pan", ("pan",), 1, "digital number", "uint16",
                 ((0.0, 3000.0),), "bilinear", "panchromatic (WorldView, Landsat B8)", log_scale=True),
        Modality("ms", ("B05", "B06", "B07", "B8A", "B11", "B12"), 6, "reflectance x10000", "uint16",
                 ((0.0, 5000.0),) * 6, "bilinear", "Sentinel-2 B5,B6,B7,B8A,B11,B12", log_scale=True),
        Modality("osm", ("red", "green", "blue"), 3, "map colour", "uint8",
                 ((0.0, 255.0),) * 3, "nearest", "OpenStreetMap rendered as an RGB map image"),
    )
}

MODALITY_NAMES: tuple[str, ...] = tuple(MODALITIES)


def get_modality(name: str) -> Modality:
    try:
        return MODALITIES[str(getattr(name, "value", name)).lower()]
    except KeyError:
        raise EarthgenError(
            f"unknown modality {name!r}; expected one of {', '.join(MODALITY_NAMES)}"
        ) from None


def parse_modality_list(text: str) -> list[str]:
    """'osm,rgb' -> ['osm', 'rgb'], each checked against the registry, no repeats."""
    names = [get_modality(part.strip()).name for part in text.split(",") if part.strip()]
    if not names:
        raise EarthgenError(f"empty modality list {text!r}")
    if len(set(names)) != len(names):
        raise EarthgenError(f"modality list {text!r} names a modality twice")
    return names


def guess_modality(band_count: int, dtype: str | None = None) -> str | None:
    """The modality a raster most likely holds, from its band count alone, or None when ambiguous.

    Only counts that one modality can have are decided (2 -> sar, 6 -> ms, 3 bands of more than
    8 bits -> rgb); 1 band could be sar/nir/pan and 3 bands of uint8 rgb/osm, so those need
    `--from` or earthgen tags.
    """
    matches = [m.name for m in MODALITIES.values() if m.accepts_band_count(band_count)]
    if dtype is not None and np.dtype(dtype) != np.uint8 and "osm" in matches:
        matches.remove("osm")  # rendered maps are always 8-bit colour
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class BandScaling:
    """Per-band map between raw units and model space: low -> -1, high -> +1, linear in raw values,
    or with `log` linear in log1p(raw) (low/high are then log1p values; raw below 0 counts as 0)."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    log: bool = False

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("BandScaling needs one low and one high per band")
        for lo, hi in zip(self.low, self.high):
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"BandScaling needs finite low < high, got ({lo}, {hi})")

    @property
    def bands(self) -> int:
        return len(self.low)

    def _per_band(self, values: Sequence[float], like: Any, ndim: int) -> Any:
        shape = (len(values),) + (1,) * (ndim - 1)  # (C, 1, 1) against (..., C, H, W)
        if hasattr(like, "new_tensor"):  # torch tensor, without importing torch here
            return like.new_tensor(values).reshape(shape)
        return np.asarray(values, dtype=np.result_type(like.dtype, np.float32)).reshape(shape)

    def to_model(self, x: Any, band_axis: int = -3) -> Any:
        """Raw values (..., C, H, W) -> model space."""
        del band_axis  # bands are always third from last: (B, C, H, W) or (C, H, W)
        if self.log:
            x = x.clamp_min(0).log1p() if hasattr(x, "new_tensor") else np.log1p(np.maximum(x, 0))
        low = self._per_band(self.low, x, 3)
        high = self._per_band(self.high, x, 3)
        return (x - low) * (2.0 / (high - low)) - 1.0

    def from_model(self, y: Any) -> Any:
        """Model space (..., C, H, W) -> raw values."""
        if self.log:  # far outside the trained range expm1 would overflow; 3 is 2x past the ends
            y = y.clamp(-3.0, 3.0) if hasattr(y, "new_tensor") else np.clip(y, -3.0, 3.0)
        low = self._per_band(self.low, y, 3)
        high = self._per_band(self.high, y, 3)
        x = (y + 1.0) * ((high - low) / 2.0) + low
        if self.log:
            x = x.expm1() if hasattr(x, "new_tensor") else np.expm1(x)
        return x

    def raw_range(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(low, high) per band in raw units (what -1 and +1 decode to)."""
        if not self.log:
            return self.low, self.high
        return tuple(math.expm1(v) for v in self.low), tuple(math.expm1(v) for v in self.high)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": list(self.low), "high": list(self.high)}
        if self.log:  # absent = linear, so tables and checkpoints written before stay valid
            out["log"] = True
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "BandScaling":
        log = obj.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"scaling 'log' must be true or false, got {log!r}")
        return cls(tuple(float(v) for v in obj["low"]), tuple(float(v) for v in obj["high"]), log)


def default_scaling(modality: str, band_count: int, dtype: str | None = None) -> BandScaling:
    """Registry default for a raster with no dataset statistics (8-bit imagery maps 0..255)."""
    mod = get_modality(modality)
    if not mod.accepts_band_count(band_count):
        raise EarthgenError(
            f"modality {mod.name} has {mod.min_bands}-{mod.max_bands} bands, not {band_count}"
        )
    if dtype is not None and np.dtype(dtype) == np.uint8:
        ranges = (mod.uint8_range,) * band_count
    else:
        ranges = mod.value_range[:band_count]
    return BandScaling(tuple(r[0] for r in ranges), tuple(r[1] for r in ranges))


def linear_to_db(x: np.ndarray) -> np.ndarray:
    """SAR linear intensity -> dB; non-positive or non-finite values become NaN (nodata)."""
    x = np.asarray(x, dtype=np.float32)
    out = np.full(x.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = 10.0 * np.log10(x[ok])
    return out


@dataclass(frozen=True)
class DtypeInfo:
    name: str
    is_integer: bool
    lo: float = field(default=-math.inf)
    hi: float = field(default=math.inf)


def dtype_info(dtype: str | np.dtype) -> DtypeInfo:
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        ii = np.iinfo(dt)
        return DtypeInfo(dt.name, True, float(ii.min), float(ii.max))
    return DtypeInfo(dt.name, False)


def cast_to_dtype(values: np.ndarray, dtype: str | np.dtype, nodata: float | None = None,
                  overwrite_input: bool = False) -> np.ndarray:
    """Floating raw values -> the output dtype: rounded and clipped for integers.

    Valid values that would collide with an integer nodata value are moved one step inside the
    range so that they stay valid (nodata is written separately, from the validity mask).
    `overwrite_input=True` rounds in place (no full-size float temporaries).
    """
    info = dtype_info(dtype)
    if not info.is_integer:
        return np.asarray(values).astype(dtype, copy=False)
    if overwrite_input:
        out = np.clip(np.rint(values, out=values), info.lo, info.hi, out=values)
    else:
        out = np.clip(np.rint(values), info.lo, info.hi)
    move_off_nodata(out, nodata, info)
    return out.astype(dtype)


def move_off_nodata(values: np.ndarray, nodata: float | None, info: DtypeInfo) -> None:
    """In place: valid values equal to an integer output's nodata move one step inside its range
    (`values` rounded, as floats or already in the integer dtype; `info` of the output dtype)."""
    if nodata is None or not math.isfinite(nodata) or not info.lo <= nodata <= info.hi:
        return
    kind = values.dtype.type
    nd = kind(int(nodata)) if values.dtype.kind in "iu" else kind(nodata)
    values[values == nd] = nd + kind(1) if nodata < info.hi else nd - kind(1)


# ITU-R BT.601 luma weights, the classic pseudo-panchromatic band.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., 3, H, W) -> (..., 1, H, W) weighted sum in the input's units."""
    r, g, b = (rgb[..., i : i + 1, :, :].astype(np.float64) for i in range(3))
    return LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b

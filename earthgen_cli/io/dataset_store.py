"""On-disk layout of a built dataset, and reading it back.

    DATASET/
      dataset.json   modalities, band names, units, normalisation (train split only), pair matrix,
                     splits, what was dropped or skipped; written last: a folder without it (an
                     interrupted build) is not a dataset
      chips.csv      one row per chip: id, row, source, scene, split (train, val, test or
                     holdout), left, bottom, right, top, crs, gsd, modalities (';'-joined),
                     caption (text condition; "" = none), flags (the scene's content flags:
                     water only, snow, cloud...; "" = none; flagged chips are for training,
                     not for pixel metrics). Tables written before captions or flags existed
                     lack those columns: they read as "".
      scenes.csv     one row per scene: reference grid and how far each modality's grid was off
      chips.zarr/    zarr v3 group, one array per modality: (rows, bands, chip, chip) float32 in the
                     modality's units (SAR in dB), NaN = nodata, one chunk per chip, so DataLoader
                     workers and separate processes read chips independently. `row` in chips.csv
                     indexes these arrays; rows of dropped chips are never written.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from earthgen_cli.errors import EarthgenError

FORMAT = "earthgen-dataset"
VERSION = 1
META_FILE = "dataset.json"
CHIPS_FILE = "chips.csv"
SCENES_FILE = "scenes.csv"
ARRAYS_DIR = "chips.zarr"
CHIP_COLUMNS = ("id", "row", "source", "scene", "split", "left", "bottom", "right", "top",
                "crs", "gsd", "modalities", "caption", "flags")


@dataclass(frozen=True)
class ChipRecord:
    id: str
    row: int
    source: str
    scene: str
    split: str
    bounds: tuple[float, float, float, float]
    crs: str  # "EPSG:xxxx", a WKT string, or "" for plain images
    gsd: float  # NaN for plain images
    modalities: tuple[str, ...]
    caption: str = ""  # the chip's text (io/captions.py); "" = none
    flags: str = ""  # content flags of the chip's scene (dataset config); "" = none

    def to_row(self) -> dict[str, Any]:
        left, bottom, right, top = self.bounds
        return {"id": self.id, "row": self.row, "source": self.source, "scene": self.scene,
                "split": self.split, "left": repr(left), "bottom": repr(bottom),
                "right": repr(right), "top": repr(top), "crs": self.crs,
                "gsd": "" if math.isnan(self.gsd) else repr(self.gsd),
                "modalities": ";".join(self.modalities), "caption": self.caption,
                "flags": self.flags}

    @classmethod
    def from_row(cls, r: dict[str, str]) -> "ChipRecord":
        return cls(r["id"], int(r["row"]), r["source"], r["scene"], r["split"],
                   (float(r["left"]), float(r["bottom"]), float(r["right"]), float(r["top"])),
                   r["crs"], float(r["gsd"]) if r["gsd"] else math.nan,
                   tuple(m for m in r["modalities"].split(";") if m), r.get("caption") or "",
                   r.get("flags") or "")


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


@dataclass(frozen=True)
class BuiltDataset:
    path: Path
    meta: dict[str, Any]
    chips: tuple[ChipRecord, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.meta["modalities"])

    @property
    def arrays_path(self) -> Path:
        return self.path / ARRAYS_DIR

    def chips_in(self, split: str | None) -> list[ChipRecord]:
        return [c for c in self.chips if split is None or c.split == split]

    def open_arrays(self, modalities: Sequence[str]) -> dict[str, Any]:
        """The chip arrays of `modalities` (zarr, read-only, opened lazily by the caller's process)."""
        import zarr

        group = zarr.open_group(self.arrays_path, mode="r")
        return {m: group[m] for m in modalities}


def open_dataset(path: str | Path) -> BuiltDataset:
    """Read dataset.json and chips.csv; refuse anything that is not a complete build."""
    path = Path(path)
    meta_path = path / META_FILE
    if not path.is_dir():
        raise EarthgenError(f"{path}: dataset folder not found")
    if not meta_path.is_file():
        raise EarthgenError(f"{path}: not a complete earthgen dataset ({META_FILE} missing; "
                            f"an interrupted build?)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise EarthgenError(f"{meta_path}: unreadable dataset metadata ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("complete") is not True:
        raise EarthgenError(f"{meta_path}: not a complete {FORMAT} (format/complete fields)")
    if meta.get("version") != VERSION:
        raise EarthgenError(f"{meta_path}: dataset version {meta.get('version')} is not "
                            f"{VERSION}; rebuild it with this earthgen")
    try:
        with open(path / CHIPS_FILE, newline="") as fh:
            chips = tuple(ChipRecord.from_row(r) for r in csv.DictReader(fh))
    except KeyError as exc:
        raise EarthgenError(f"{path / CHIPS_FILE}: unreadable chips table (no column {exc})") from None
    except (OSError, ValueError) as exc:
        raise EarthgenError(f"{path / CHIPS_FILE}: unreadable chips table ({exc})") from None
    if len(chips) != meta.get("chips"):
        raise EarthgenError(f"{path / CHIPS_FILE}: {len(chips)} chips, dataset.json says "
                            f"{meta.get('chips')}")
    _check_table(path, meta, chips)
    return BuiltDataset(path, meta, chips)


def _check_table(path: Path, meta: dict, chips: tuple[ChipRecord, ...]) -> None:
    """What a hand-edited or damaged dataset gets wrong, caught before any array is read: an unknown
    modality, a chip naming a modality the dataset does not hold, a row outside the arrays."""
    from earthgen_cli.modalities import MODALITY_NAMES

    mods = meta.get("modalities")
    if not isinstance(mods, dict):
        raise EarthgenError(f"{path / META_FILE}: no modalities mapping")
    unknown = sorted(set(mods) - set(MODALITY_NAMES))
    if unknown:
        raise EarthgenError(f"{path / META_FILE}: unknown modality {unknown[0]!r} (known: {', '.join(MODALITY_NAMES)})")
    rows = meta.get("rows")
    if not isinstance(rows, int):
        raise EarthgenError(f"{path / META_FILE}: no row count (rows)")
    for c in chips:
        if not 0 <= c.row < max(rows, 1):
            raise EarthgenError(f"{path / CHIPS_FILE}: chip {c.id} has row {c.row}, outside the arrays' "
                                f"{rows} rows (dataset.json)")
        extra = set(c.modalities) - set(mods)
        if extra:
            raise EarthgenError(f"{path / CHIPS_FILE}: chip {c.id} lists modality {sorted(extra)[0]!r}, which "
                                f"dataset.json does not hold")


def pair_matrix(chips: list[ChipRecord] | tuple[ChipRecord, ...],
                modalities: tuple[str, ...]) -> list[list[int]]:
    """EarthMM fig. 3b: diagonal = chips holding a modality, off-diagonal = chips holding both."""
    idx = {m: i for i, m in enumerate(modalities)}
    counts = [[0] * len(modalities) for _ in modalities]
    for c in chips:
        present = [idx[m] for m in c.modalities if m in idx]
        for i in present:
            for j in present:
                counts[i][j] += 1
    return counts


def format_summary(ds: BuiltDataset) -> str:
    """The text `earthgen info DATASET` and `build-dataset` print."""
    meta = ds.meta
    mods = ds.modalities
    lines = [f"dataset {ds.path}: {meta['chips']} chips of {meta['chip']}x{meta['chip']} px "
             f"from {meta['scenes']} scene(s)"]
    lines.append("splits: " + ", ".join(f"{s} {n}" for s, n in meta["splits"].items()))
    holdout = meta.get("split", {}).get("holdout_sources")
    if holdout:
        lines.append("holdout sources (out-of-region, never trained on): " + ", ".join(holdout))
    flagged = meta.get("flagged") or {}
    if any(flagged.values()):
        lines.append("flagged chips (content flags; keep out of pixel metrics): "
                     + ", ".join(f"{s} {n}" for s, n in flagged.items()))
    g0, g1 = meta["gsd_range"] if meta["gsd_range"] else (math.nan, math.nan)
    lines.append(f"GSD: {g0:g} - {g1:g} m/px" if meta["gsd_range"] else "GSD: none (plain images)")
    for m in mods:
        info = meta["modalities"][m]
        lines.append(f"  {m:<4} bands {','.join(info['bands'])} [{info['units']}]")
    dropped = meta.get("dropped", {})
    if dropped:
        lines.append("dropped chips: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    shift = meta.get("max_grid_shift_px")
    if shift is not None:
        lines.append(f"grids: largest sub-pixel shift {shift:.3f} px, "
                     f"{meta.get('warped_inputs', 0)} input(s) warped onto their scene's grid")
        for g in meta.get("grid_shifts", [])[:3]:
            how = "other CRS" if g["shift_px"] is None else f"shift {g['shift_px']:.3f} px"
            lines.append(f"  {g['scene']} {g['modality']}: {how}, GSD x{g['scale']:g}")
    captions = meta.get("captions")
    if captions:
        lines.append(f"captions: {captions['chips']} of {meta['chips']} chips ("
                     + "; ".join(f"{k}: {v}" for k, v in captions["sources"].items()) + ")")
    for s in meta.get("skipped", []):
        lines.append(f"skipped {s['scene']}: {s['reason']}")
    no_chips = meta.get("no_chips", [])
    if no_chips:  # one line per reason: a --chip too large for a whole source is one line, not fifty
        lines.append(f"no chip from {len(no_chips)} of {meta['scenes']} scene(s):")
        by_reason: dict[str, list[str]] = {}
        for s in no_chips:
            by_reason.setdefault(s["reason"], []).append(s["scene"])
        lines.extend(f"  {reason}: {', '.join(scenes)}" for reason, scenes in by_reason.items())
    lines.append("pair matrix (chips holding both modalities):")
    width = max([5] + [len(str(v)) + 1 for row in meta["pair_matrix"]["counts"] for v in row])
    lines.append(" " * 5 + "".join(f"{m:>{width}}" for m in mods))
    for m, row in zip(mods, meta["pair_matrix"]["counts"]):
        lines.append(f"{m:<5}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def describe_dataset(path: str | Path, as_json: bool = False) -> str:
    """`earthgen info DATASET`: the summary text, or the counts as one JSON object."""
    ds = open_dataset(path)
    if not as_json:
        return format_summary(ds)
    keys = ("chips", "scenes", "chip", "splits", "flagged", "gsd_range", "pair_matrix", "dropped",
            "skipped", "no_chips", "max_grid_shift_px")
    out = {k: ds.meta.get(k) for k in keys}
    out["modalities"] = {m: ds.meta["modalities"][m]["bands"] for m in ds.modalities}
    out["path"] = str(ds.path)
    return json.dumps(out, sort_keys=True)

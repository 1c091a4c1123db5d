"""Chip captions for the text condition (Text2Earth): from a CSV table per scene, or from OSM.

A `captions: {csv: ...}` source reads one caption per scene from a UTF-8 CSV; a scene missing from
the table gets none (an empty caption: the null text in training). A `captions: {from: osm}`
source writes one caption per chip from its rendered OSM map (io/osm_render.py). The rendering
keeps only a class per pixel (the style's palette, no tags), so the caption is built from the share
of each class among the chip's valid pixels, each pixel taken as the nearest palette colour (exact
for earthgen's own rendering, close enough for a resampled one):

| class    | palette layer(s)       | share >= 30%          | >= 10%        | >= 2%                |
|----------|------------------------|-----------------------|---------------|----------------------|
| building | building               | dense buildings       | buildings     | scattered buildings  |
| road     | road_minor, road_major | a dense road network  | roads         | a few roads          |
| water    | water                  | mostly water          | water         | some water           |
| green    | green                  | mostly vegetation     | vegetation    | some vegetation      |
| landuse  | landuse                | mostly built-up land  | built-up land | some built-up land   |

Phrases are ordered by share (largest first; ties in table order) and joined as
"satellite image with dense buildings, roads and some vegetation"; a chip with no class at 2% or
more is "satellite image with no mapped features". The same pixels always give the same caption.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_config import CaptionFrom, DatasetConfig
from earthgen_cli.io.osm_render import COLOURS, GROUND, LAYERS

SHARES = (0.30, 0.10, 0.02)  # thresholds of the three phrases of each class
CLASSES = (
    ("building", ("building",), ("dense buildings", "buildings", "scattered buildings")),
    ("road", ("road_minor", "road_major"), ("a dense road network", "roads", "a few roads")),
    ("water", ("water",), ("mostly water", "water", "some water")),
    ("green", ("green",), ("mostly vegetation", "vegetation", "some vegetation")),
    ("landuse", ("landuse",), ("mostly built-up land", "built-up land", "some built-up land")),
)
EMPTY_MAP = "satellite image with no mapped features"
_PALETTE = np.array([GROUND] + [COLOURS[k] for k in LAYERS], dtype=np.float32)  # index 0 = ground


def osm_layer_map(chip: np.ndarray) -> np.ndarray:
    """(H, W) for a (3, H, W) rendered OSM chip: each pixel's nearest style colour as an index
    into (ground, *LAYERS), -1 where a band is not finite."""
    pixels = chip.reshape(3, -1).T.astype(np.float32)
    ok = np.isfinite(pixels).all(axis=1)
    index = np.full(len(pixels), -1)
    index[ok] = ((pixels[ok][:, None, :] - _PALETTE[None]) ** 2).sum(-1).argmin(1)
    return index.reshape(chip.shape[1:])


def building_mask(chip: np.ndarray) -> np.ndarray:
    """(H, W) bool: the building pixels of a (3, H, W) rendered OSM chip."""
    return osm_layer_map(chip) == 1 + LAYERS.index("building")


def osm_class_shares(chip: np.ndarray) -> dict[str, float]:
    """Share of each caption class among the valid pixels of a (3, H, W) rendered OSM chip."""
    nearest = osm_layer_map(chip).ravel()
    nearest = nearest[nearest >= 0]
    if not len(nearest):
        return {}
    counts = np.bincount(nearest, minlength=len(_PALETTE)) / len(nearest)
    return {name: float(sum(counts[1 + LAYERS.index(layer)] for layer in layers))
            for name, layers, _ in CLASSES}


def osm_caption(chip: np.ndarray) -> str:
    """The caption of one rendered OSM chip (table above); "" when no pixel is valid."""
    shares = osm_class_shares(chip)
    if not shares:
        return ""
    phrases = []
    for order, (name, _, words) in enumerate(CLASSES):
        level = next((i for i, s in enumerate(SHARES) if shares[name] >= s), None)
        if level is not None:
            phrases.append((-shares[name], order, words[level]))
    if not phrases:
        return EMPTY_MAP
    parts = [p for _, _, p in sorted(phrases)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"satellite image with {listed}"


def scene_name(scene_id: str, source: str) -> str:
    """The name a caption table uses for a scene: its id without the leading "<source>/"."""
    return scene_id[len(source) + 1:] if scene_id.startswith(source + "/") else scene_id


def read_caption_csv(path: Path, key: str, column: str, where: str) -> dict[str, str]:
    """scene name -> caption (whitespace collapsed to single spaces) from a UTF-8 CSV table."""
    if not path.is_file():
        raise EarthgenError(f"{where}: captions file {path} not found")
    out: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            for c in (key, column):
                if c not in columns:
                    raise EarthgenError(f"{path}: no column {c!r} (columns: {', '.join(columns) or 'none'})")
            for line, row in enumerate(reader, start=2):
                name = (row[key] or "").strip()
                text = " ".join((row[column] or "").split())
                if not name:
                    raise EarthgenError(f"{path}: line {line}: empty {key}")
                if out.get(name, text) != text:
                    raise EarthgenError(f"{path}: line {line}: scene {name!r} has two different captions")
                out[name] = text
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EarthgenError(f"{path}: unreadable captions table ({exc})") from None
    return out


def csv_captions(config: DatasetConfig) -> dict[str, dict[str, str]]:
    """source -> (scene name -> caption) for every source with `captions: {csv: ...}`."""
    return {s.name: read_caption_csv(config.root / s.captions.csv, s.captions.key, s.captions.column,
                                     f"{config.path}: source {s.name}")
            for s in config.sources if s.captions is not None and s.captions.origin is CaptionFrom.csv}

"""The `build-dataset` input description: a YAML file of sources, loaded into frozen dataclasses.

Loading is strict (STYLE.md): unknown keys, wrong types and unknown modality names are errors that
name the config file. Paths in the file are relative to `root`, itself relative to the config file.

    root: ../../../shared/data          # optional; default: the config file's folder
    manifest: manifest.json             # optional: content flags per scene folder (below)
    sources:
      - name: bigearthnet_mm            # unique; used in chip ids
        scenes: bigearthnet_mm/*        # glob of scene folders (kind: geotiff)
        modalities:
          rgb: {file: s2_rgb.tif}
          sar: {file: s1_vvvh_db.tif, units: db}
          ms:  {file: s2_ms20m.tif, bands: [1, 2, 3, 4, 5, 6]}
        osm: {geojson: buildings.geojson}   # optional: rendered as the osm modality
        captions: {csv: captions.csv, key: scene, column: caption}  # optional: text per scene
        flags: {"bigearthnet_mm/*_87_48": "cloud"}   # optional: content flags by scene folder glob
        holdout: false                  # optional: true puts every chip in the `holdout` split
      - name: qxs
        kind: image_pairs               # non-georeferenced PNG/JPG pairs matched by file stem
        scenes: qxs                     # the folder that holds one sub-folder per modality
        modalities:
          sar: {file: "sar/*.png"}
          rgb: {file: "opt/*.png"}

`captions:` (optional, Text2Earth's text condition) gives every chip of a source a caption, stored
in chips.csv: `{csv: FILE, key: COLUMN, column: COLUMN}` takes one caption per scene from a CSV
(path relative to `root`; `key` holds the scene name: its folder below the `scenes:` pattern's
first folder, or the file stem for image_pairs; defaults `scene` and `caption`), and
`{from: osm}` writes one per chip from the shares of its rendered OSM classes (io/captions.py).

Content flags mark low-information scenes (water only, snow, cloud): their chips are kept for
training (they are real data) but carry the text in chips.csv's `flags` column so that pixel metrics
can leave them out. Two places give them, and a scene's flags are the union (joined with "; "):
- `manifest: FILE` (top level, relative to `root`): a JSON list of objects with `scene` (the scene
  folder relative to `root`, as in ../shared/data/manifest.json) and an optional `content_flags`
  (a string, a list of strings, or null); other keys are ignored. Scenes not built are ignored.
- `flags: {PATTERN: TEXT}` (per source): PATTERN is a glob over the scene folder relative to
  `root` (for image_pairs, the folder and the file stem: `qxs/0001`); it must match a scene of the
  source, or the build stops.

`holdout: true` (per source) sends every chip of the source to the `holdout` split, whatever
--split-by says: never train/val/test, never in the normalisation statistics (train only). Use it
for an out-of-region test set.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earthgen_cli.errors import EarthgenError
from earthgen_cli.modalities import MODALITY_NAMES, get_modality


class SourceKind(str, enum.Enum):
    geotiff = "geotiff"  # georeferenced scene folders
    image_pairs = "image_pairs"  # plain images paired by name, no geometry


class SarUnits(str, enum.Enum):
    db = "db"
    linear = "linear"


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    file: str  # file name (or glob) inside the scene folder
    bands: tuple[int, ...] | None = None  # 1-based band indexes in the file; None = all
    units: str | None = None  # sar: "db" | "linear" (linear intensity becomes dB)
    resampling: str | None = None  # override of the registry's resampling for this modality
    nodata: float | None = None  # override of the file's nodata value


@dataclass(frozen=True)
class OsmSpec:
    """Vector OSM data rendered onto each scene's reference grid as the `osm` modality."""

    path: str  # .osm.pbf or .geojson, relative to the scene folder first, then to the root
    file_format: str  # "pbf" | "geojson"
    crs: str | None = None  # grid of an OSM-only source (no raster to take it from)
    gsd: float | None = None


class CaptionFrom(str, enum.Enum):
    csv = "csv"  # one caption per scene from a CSV table
    osm = "osm"  # one caption per chip from its rendered OSM classes


@dataclass(frozen=True)
class CaptionSpec:
    """Where a source's chips get their captions (the text condition of `train` with data.text)."""

    origin: CaptionFrom
    csv: str | None = None  # csv only: the table, relative to the root
    key: str = "scene"  # csv only: the column holding the scene name
    column: str = "caption"  # csv only: the column holding the caption


@dataclass(frozen=True)
class SourceSpec:
    name: str
    scenes: str
    modalities: tuple[ModalitySpec, ...]
    kind: SourceKind = SourceKind.geotiff
    osm: OsmSpec | None = None
    captions: CaptionSpec | None = None
    flags: tuple[tuple[str, str], ...] = ()  # (scene folder glob relative to root, text)
    holdout: bool = False  # every chip in the `holdout` split

    @property
    def modality_names(self) -> tuple[str, ...]:
        names = tuple(m.name for m in self.modalities)
        return names + (("osm",) if self.osm is not None else ())


@dataclass(frozen=True)
class DatasetConfig:
    path: Path  # the YAML file
    root: Path
    sources: tuple[SourceSpec, ...]
    manifest: Path | None = None  # JSON of content flags per scene folder
    manifest_flags: tuple[tuple[str, str], ...] = ()  # (scene folder relative to root, text)

    def scene_flags(self, source: SourceSpec, folder: str) -> str:
        """The content flags of a scene (its folder relative to the root): manifest, then the
        source's `flags:` patterns, "; "-joined without repeats; "" when none."""
        from fnmatch import fnmatchcase

        found = [t for scene, t in self.manifest_flags if scene == folder]
        found += [t for pattern, t in source.flags if fnmatchcase(folder, pattern)]
        return "; ".join(dict.fromkeys(found))

    @property
    def modality_names(self) -> tuple[str, ...]:
        seen = {m for s in self.sources for m in s.modality_names}
        return tuple(m for m in MODALITY_NAMES if m in seen)  # registry order


_RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode")


def _check_keys(where: str, obj: Any, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(obj, dict):
        raise EarthgenError(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise EarthgenError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                            f"allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(obj))
    if missing:
        raise EarthgenError(f"{where}: missing key(s) {', '.join(missing)}")
    return obj


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise EarthgenError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _modality(where: str, name: Any, obj: Any) -> ModalitySpec:
    if not isinstance(name, str) or name.lower() not in MODALITY_NAMES:
        raise EarthgenError(f"{where}: unknown modality {name!r}; expected one of "
                            f"{', '.join(MODALITY_NAMES)}")
    if name == "osm" and isinstance(obj, dict) and "file" not in obj:
        raise EarthgenError(f"{where}: declare vector OSM data under the source's `osm:` key; "
                            f"`modalities: osm:` takes an already rendered raster (`file:`)")
    if isinstance(obj, str):  # shorthand `rgb: s2_rgb.tif`
        obj = {"file": obj}
    where = f"{where}.{name}"
    obj = _check_keys(where, obj, {"file", "bands", "units", "resampling", "nodata"}, {"file"})
    bands = obj.get("bands")
    if bands is not None:
        if (not isinstance(bands, list) or not bands
                or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in bands)):
            raise EarthgenError(f"{where}.bands: expected a list of 1-based band numbers, got {bands!r}")
        bands = tuple(bands)
        mod = get_modality(name)
        if not mod.accepts_band_count(len(bands)):
            raise EarthgenError(f"{where}.bands: modality {name} takes {mod.min_bands}-"
                                f"{mod.max_bands} bands, {len(bands)} selected")
    units = obj.get("units")
    if units is not None:
        if name != "sar":
            raise EarthgenError(f"{where}.units: only sar declares units (db or linear)")
        if units not in {u.value for u in SarUnits}:
            raise EarthgenError(f"{where}.units: expected db or linear, got {units!r}")
    resampling = obj.get("resampling")
    if resampling is not None and resampling not in _RESAMPLING:
        raise EarthgenError(f"{where}.resampling: expected one of {', '.join(_RESAMPLING)}, "
                            f"got {resampling!r}")
    nodata = obj.get("nodata")
    if nodata is not None and (isinstance(nodata, bool) or not isinstance(nodata, (int, float))):
        raise EarthgenError(f"{where}.nodata: expected a number, got {nodata!r}")
    return ModalitySpec(name, _str(f"{where}.file", obj["file"]), bands, units, resampling,
                        None if nodata is None else float(nodata))


def _osm(where: str, obj: Any) -> OsmSpec:
    obj = _check_keys(where, obj, {"pbf", "geojson", "crs", "gsd"}, set())
    files = {k: v for k, v in obj.items() if k in ("pbf", "geojson")}
    if len(files) != 1:
        raise EarthgenError(f"{where}: give exactly one of pbf or geojson")
    (fmt, path), = files.items()
    gsd = obj.get("gsd")
    if gsd is not None and (isinstance(gsd, bool) or not isinstance(gsd, (int, float)) or gsd <= 0):
        raise EarthgenError(f"{where}.gsd: expected a positive number, got {gsd!r}")
    crs = _str(f"{where}.crs", obj["crs"]) if "crs" in obj else None
    return OsmSpec(_str(f"{where}.{fmt}", path), fmt, crs, None if gsd is None else float(gsd))


def _captions(where: str, obj: Any) -> CaptionSpec:
    obj = _check_keys(where, obj, {"csv", "key", "column", "from"}, set())
    if "from" in obj:
        if obj["from"] != CaptionFrom.osm.value or len(obj) != 1:
            raise EarthgenError(f"{where}: expected {{from: osm}} or {{csv: FILE, key: COLUMN, "
                                f"column: COLUMN}}, got {obj!r}")
        return CaptionSpec(CaptionFrom.osm)
    if "csv" not in obj:
        raise EarthgenError(f"{where}: give csv: (a table of scene captions) or from: osm")
    return CaptionSpec(CaptionFrom.csv, _str(f"{where}.csv", obj["csv"]),
                       _str(f"{where}.key", obj.get("key", "scene")),
                       _str(f"{where}.column", obj.get("column", "caption")))


def _flag_text(where: str, value: Any) -> str:
    """Flags as one line of text: a string or a list of strings."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise EarthgenError(f"{where}: expected a non-empty string or list of strings, got {value!r}")
    text = "; ".join(v.strip() for v in items)
    if "\n" in text or "\r" in text:
        raise EarthgenError(f"{where}: flags must be one line of text")
    return text


def _source_flags(where: str, obj: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(obj, dict) or not obj:
        raise EarthgenError(f"{where}: expected a mapping of scene folder glob -> flag text, "
                            f"got {obj!r}")
    return tuple((_str(f"{where} key", k), _flag_text(f"{where}.{k}", v)) for k, v in obj.items())


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise EarthgenError(f"{where}: expected true or false, got {value!r}")
    return value


def read_manifest(where: str, path: Path) -> tuple[tuple[str, str], ...]:
    """(scene folder, content flags) of every flagged scene of a manifest JSON file."""
    import json

    try:
        obj = json.loads(path.read_text())
    except OSError as exc:
        raise EarthgenError(f"{where}: cannot read manifest {path} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise EarthgenError(f"{where}: manifest {path} is not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(obj, list):
        raise EarthgenError(f"{where}: manifest {path}: expected a JSON list of scene objects, "
                            f"got {type(obj).__name__}")
    out, seen = [], set()
    for i, entry in enumerate(obj):
        at = f"{where}: manifest {path}: entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("scene"), str) or not entry["scene"]:
            raise EarthgenError(f"{at}: expected an object with a `scene` string")
        scene = entry["scene"].strip("/")
        if scene in seen:
            raise EarthgenError(f"{at}: scene {scene} listed twice")
        seen.add(scene)
        flags = entry.get("content_flags")
        if flags is None or flags == [] or flags == "":
            continue
        out.append((scene, _flag_text(f"{at} ({scene}).content_flags", flags)))
    return tuple(out)


def _source(where: str, obj: Any) -> SourceSpec:
    obj = _check_keys(where, obj, {"name", "scenes", "modalities", "kind", "osm", "captions",
                                   "flags", "holdout"},
                      {"name", "scenes", "modalities"})
    name = _str(f"{where}.name", obj["name"])
    where = f"{where} ({name})"
    kind = obj.get("kind", "geotiff")
    if kind not in {k.value for k in SourceKind}:
        raise EarthgenError(f"{where}.kind: expected geotiff or image_pairs, got {kind!r}")
    mods = obj["modalities"]
    osm = _osm(f"{where}.osm", obj["osm"]) if obj.get("osm") is not None else None
    if not isinstance(mods, dict) or (not mods and osm is None):
        raise EarthgenError(f"{where}.modalities: expected a mapping of modality -> file")
    if not mods and (osm.crs is None or osm.gsd is None):
        raise EarthgenError(f"{where}.osm: an OSM-only source needs crs: and gsd: for its grid")
    specs = tuple(_modality(f"{where}.modalities", k, v) for k, v in mods.items())
    if osm is not None and any(m.name == "osm" for m in specs):
        raise EarthgenError(f"{where}: osm given both as a raster file and as vector data")
    if osm is not None and kind == SourceKind.image_pairs.value:
        raise EarthgenError(f"{where}: vector OSM needs georeferenced scenes, not image_pairs")
    captions = _captions(f"{where}.captions", obj["captions"]) if obj.get("captions") else None
    if (captions is not None and captions.origin is CaptionFrom.osm and osm is None
            and not any(m.name == "osm" for m in specs)):
        raise EarthgenError(f"{where}.captions: from: osm needs an osm modality in this source")
    flags = _source_flags(f"{where}.flags", obj["flags"]) if "flags" in obj else ()
    holdout = _bool(f"{where}.holdout", obj["holdout"]) if "holdout" in obj else False
    return SourceSpec(name, _str(f"{where}.scenes", obj["scenes"]), specs, SourceKind(kind), osm,
                      captions, flags, holdout)


def parse_dataset_config(obj: Any, path: Path, root_override: Path | None = None) -> DatasetConfig:
    where = str(path)
    obj = _check_keys(where, obj, {"root", "sources", "manifest"}, {"sources"})
    if root_override is not None:
        root = root_override
    else:
        root = path.parent / _str(f"{where}: root", obj["root"]) if "root" in obj else path.parent
    sources = obj["sources"]
    if not isinstance(sources, list) or not sources:
        raise EarthgenError(f"{where}: sources: expected a non-empty list")
    specs = tuple(_source(f"{where}: sources[{i}]", s) for i, s in enumerate(sources))
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EarthgenError(f"{where}: source name(s) used twice: {', '.join(dup)}")
    root = root.resolve()
    manifest, manifest_flags = None, ()
    if "manifest" in obj:
        manifest = root / _str(f"{where}: manifest", obj["manifest"])
        manifest_flags = read_manifest(where, manifest)
    return DatasetConfig(path, root, specs, manifest, manifest_flags)


def load_dataset_config(path: str | Path, root_override: str | Path | None = None) -> DatasetConfig:
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise EarthgenError(f"{path}: cannot read dataset config ({exc.strerror or exc})") from None
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise EarthgenError(f"{path}: invalid YAML{at}") from None
    return parse_dataset_config(obj, path, None if root_override is None else Path(root_override))

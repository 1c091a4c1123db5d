"""Finding the scenes of a dataset source and checking their files before anything is read.

A scene is one folder (kind geotiff) or one file stem (kind image_pairs) with one raster per
declared modality. Every problem found here is an `EarthgenError` that names the scene and the file:
missing modality, unreadable/corrupt file, no CRS, band selection out of range, wrong band count.
Only metadata is read; pixel reads happen later, window by window.
"""

from __future__ import annotations

import glob
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_config import DatasetConfig, ModalitySpec, SourceKind, SourceSpec
from earthgen_cli.modalities import get_modality


@dataclass(frozen=True)
class Grid:
    """A pixel grid: CRS (None for plain images), affine transform (a, b, c, d, e, f), size."""

    crs: str | None  # WKT, so that it survives pickling to dask workers and JSON
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def gsd(self) -> float:
        a, b, _, d, e, _ = self.transform
        return math.sqrt(abs(a * e - b * d))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of a north-up grid."""
        a, _, c, _, e, f = self.transform
        xs = (c, c + a * self.width)
        ys = (f, f + e * self.height)
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def rotated(self) -> bool:
        return self.transform[1] != 0.0 or self.transform[3] != 0.0

    def affine(self):
        from affine import Affine

        return Affine(*self.transform)


@dataclass(frozen=True)
class ModalityInput:
    spec: ModalitySpec
    path: str
    grid: Grid
    bands: tuple[int, ...]  # 1-based band indexes read from the file
    dtype: str
    nodata: float | None
    descriptions: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class OsmInput:
    path: str
    file_format: str
    crs: str | None = None  # grid of an OSM-only scene
    gsd: float | None = None


@dataclass(frozen=True)
class SceneInput:
    source: str
    scene_id: str  # "<source>/<folder relative to the glob root>" or "<source>/<stem>"
    kind: SourceKind
    modalities: tuple[ModalityInput, ...]
    osm: OsmInput | None = None
    flags: str = ""  # content flags (dataset config: manifest + the source's flags:); "" = none


def grid_of(ds) -> Grid:
    crs = ds.crs.to_wkt() if ds.crs else None
    t = ds.transform
    return Grid(crs, (t.a, t.b, t.c, t.d, t.e, t.f), ds.width, ds.height)


def _find_file(scene: str, folder: Path, spec: ModalitySpec) -> str:
    hits = sorted(glob.glob(str(folder / spec.file)))
    if not hits:
        raise EarthgenError(f"scene {scene}: missing modality {spec.name} "
                            f"(no file matching {spec.file} in {folder})")
    if len(hits) > 1:
        raise EarthgenError(f"scene {scene}: modality {spec.name} pattern {spec.file} matches "
                            f"{len(hits)} files in {folder}; make it match one")
    return hits[0]


def open_modality(scene: str, path: str, spec: ModalitySpec, need_crs: bool) -> ModalityInput:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    from earthgen_cli.io.vrt import refuse_unsafe_vrt

    refuse_unsafe_vrt(path, f"scene {scene}: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                grid = grid_of(ds)
                count, dtype, nodata = ds.count, ds.dtypes[0], ds.nodata
                descriptions = tuple(d or "" for d in ds.descriptions)
    except RasterioIOError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise EarthgenError(f"scene {scene}: cannot open {path} as a raster ({first})") from None
    if need_crs and grid.crs is None:
        raise EarthgenError(f"scene {scene}: {path} has no CRS (not georeferenced); "
                            f"declare the source as kind: image_pairs for plain images")
    if grid.rotated:
        raise EarthgenError(f"scene {scene}: {path} has a rotated transform; warp it north-up first")
    bands = spec.bands or tuple(range(1, count + 1))
    if max(bands) > count:
        raise EarthgenError(f"scene {scene}: {path} has {count} band(s); band {max(bands)} "
                            f"selected for {spec.name}")
    mod = get_modality(spec.name)
    if not mod.accepts_band_count(len(bands)):
        raise EarthgenError(f"scene {scene}: {path} gives {len(bands)} band(s) for {spec.name}, "
                            f"which takes {mod.min_bands}-{mod.max_bands}; select them with bands:")
    if spec.nodata is not None:
        nodata = spec.nodata
    return ModalityInput(spec, path, grid, bands, dtype, nodata,
                         tuple(descriptions[b - 1] for b in bands))


def _osm_input(scene: str, folder: Path, root: Path, source: SourceSpec) -> OsmInput | None:
    if source.osm is None:
        return None
    for base in (folder, root):
        hits = sorted(glob.glob(str(base / source.osm.path)))
        if hits:
            return OsmInput(hits[0], source.osm.file_format, source.osm.crs, source.osm.gsd)
    raise EarthgenError(f"scene {scene}: missing modality osm (no {source.osm.file_format} file "
                        f"matching {source.osm.path} in {folder} or {root})")


def discover_scenes(source: SourceSpec, root: Path) -> list[tuple[str, Path]]:
    """(scene id, folder) of every scene of `source`; image_pairs scenes share one folder."""
    if source.kind == SourceKind.image_pairs:
        folder = root / source.scenes
        if not folder.is_dir():
            raise EarthgenError(f"source {source.name}: image pair folder {folder} not found")
        first = source.modalities[0]
        stems = sorted(Path(p).stem for p in glob.glob(str(folder / first.file)))
        return [(f"{source.name}/{s}", folder) for s in stems]
    folders = sorted(p for p in glob.glob(str(root / source.scenes)) if Path(p).is_dir())
    parts = Path(source.scenes).parts
    # ids are relative to the pattern's first folder when that is a plain name, else to root
    base = root / parts[0] if parts and not glob.has_magic(parts[0]) else root
    out = []
    for f in folders:
        rel = Path(f).relative_to(base) if Path(f) != base else Path(base.name)
        out.append((f"{source.name}/{rel.as_posix()}" if str(rel) != "." else source.name, Path(f)))
    return out


def open_scene(source: SourceSpec, scene_id: str, folder: Path, root: Path) -> SceneInput:
    """Check every declared file of one scene (metadata only)."""
    if source.kind == SourceKind.image_pairs:
        stem = scene_id.rsplit("/", 1)[-1]
        mods = []
        for spec in source.modalities:
            hits = [p for p in sorted(glob.glob(str(folder / spec.file))) if Path(p).stem == stem]
            if not hits:
                raise EarthgenError(f"scene {scene_id}: missing modality {spec.name} "
                                    f"(no {spec.file} with stem {stem} in {folder})")
            mods.append(open_modality(scene_id, hits[0], spec, need_crs=False))
        sizes = {(m.grid.width, m.grid.height) for m in mods}
        if len(sizes) > 1:
            raise EarthgenError(f"scene {scene_id}: paired images differ in size "
                                f"({', '.join(f'{w}x{h}' for w, h in sorted(sizes))})")
        # Plain images have no geometry: every modality lies on the same pixel grid.
        mods = [ModalityInput(m.spec, m.path, Grid(None, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                                                   m.grid.width, m.grid.height),
                              m.bands, m.dtype, m.nodata, m.descriptions) for m in mods]
        return SceneInput(source.name, scene_id, source.kind, tuple(mods))
    mods = tuple(open_modality(scene_id, _find_file(scene_id, folder, spec), spec, need_crs=True)
                 for spec in source.modalities)
    return SceneInput(source.name, scene_id, source.kind, mods,
                      _osm_input(scene_id, folder, root, source))


@dataclass(frozen=True)
class SceneProblem:
    scene_id: str
    message: str


def scene_folder(source: SourceSpec, scene_id: str, folder: Path, root: Path) -> str:
    """A scene's folder relative to the root (what manifests and `flags:` patterns name);
    for image_pairs the folder and the file stem."""
    import os

    rel = Path(os.path.relpath(folder, root)).as_posix()
    if source.kind == SourceKind.image_pairs:
        rel = f"{rel}/{scene_id.rsplit('/', 1)[-1]}"
    return rel


def find_scenes(config: DatasetConfig, skip_bad: bool) -> tuple[list[SceneInput], list[SceneProblem]]:
    """All scenes of all sources, checked. Bad scenes raise, or are listed when `skip_bad`."""
    from dataclasses import replace
    from fnmatch import fnmatchcase

    scenes: list[SceneInput] = []
    problems: list[SceneProblem] = []
    for source in config.sources:
        found = discover_scenes(source, config.root)
        if not found:
            raise EarthgenError(f"{config.path}: source {source.name}: no scene matches "
                                f"{config.root / source.scenes}")
        folders = [scene_folder(source, scene_id, folder, config.root) for scene_id, folder in found]
        for pattern, _ in source.flags:
            if not any(fnmatchcase(f, pattern) for f in folders):
                raise EarthgenError(f"{config.path}: source {source.name}: flags pattern "
                                    f"{pattern!r} matches none of its {len(folders)} scene(s) "
                                    f"(folders relative to {config.root}, e.g. {folders[0]})")
        for (scene_id, folder), rel in zip(found, folders):
            try:
                scene = open_scene(source, scene_id, folder, config.root)
            except EarthgenError as exc:
                if not skip_bad:
                    raise
                problems.append(SceneProblem(scene_id, str(exc)))
                continue
            scenes.append(replace(scene, flags=config.scene_flags(source, rel)))
    return scenes, problems

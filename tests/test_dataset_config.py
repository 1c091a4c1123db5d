"""Strict loading of build-dataset YAML configs: every mistake is one line naming the file."""

from __future__ import annotations

import pytest

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_config import SourceKind, load_dataset_config

GOOD = """root: data
sources:
  - name: a
    scenes: s/*
    modalities:
      rgb: rgb.tif
      sar: {file: sar.tif, bands: [2, 1], units: linear, resampling: cubic}
    osm: {geojson: b.geojson}
  - name: b
    kind: image_pairs
    scenes: pairs
    modalities:
      sar: {file: "sar/*.png"}
      rgb: {file: "opt/*.png"}
  - name: c
    scenes: osm
    modalities: {}
    osm: {pbf: x.osm.pbf, crs: "EPSG:32635", gsd: 2}
"""


def test_good_config_loads_into_dataclasses(tmp_path):
    cfg_path = tmp_path / "ds.yaml"
    cfg_path.write_text(GOOD)
    cfg = load_dataset_config(cfg_path)
    assert cfg.root == (tmp_path / "data").resolve()
    a, b, c = cfg.sources
    assert a.modality_names == ("rgb", "sar", "osm") and a.modalities[1].bands == (2, 1)
    assert a.modalities[1].units == "linear" and a.osm.file_format == "geojson"
    assert b.kind == SourceKind.image_pairs and c.modality_names == ("osm",) and c.osm.gsd == 2.0
    assert cfg.modality_names == ("rgb", "sar", "osm")
    assert load_dataset_config(cfg_path, tmp_path / "elsewhere").root == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize("old,new,message", [
    ("rgb: rgb.tif", "lidar: rgb.tif", "unknown modality 'lidar'"),
    ("    scenes: s/*\n", "    scenes: s/*\n    colour: red\n", "unknown key(s) colour"),
    ("bands: [2, 1]", "bands: [0]", "1-based band numbers"),
    ("bands: [2, 1]", "bands: [1, 2, 3]", "sar takes 1-2 bands, 3 selected"),
    ("units: linear", "units: watts", "expected db or linear"),
    ("resampling: cubic", "resampling: magic", "resampling: expected one of"),
    ("name: b", "name: a", "source name(s) used twice: a"),
    (", crs: \"EPSG:32635\", gsd: 2", "", "OSM-only source needs crs: and gsd:"),
    ("kind: image_pairs", "kind: folders", "expected geotiff or image_pairs"),
    ("sources:", "source:", "unknown key(s) source"),
])
def test_bad_config_is_one_line_naming_the_file(tmp_path, old, new, message):
    cfg_path = tmp_path / "ds.yaml"
    assert old in GOOD
    cfg_path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(EarthgenError) as err:
        load_dataset_config(cfg_path)
    text = str(err.value)
    assert "\n" not in text and str(cfg_path) in text and message in text, text


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [\n  - {name: a\n")
    with pytest.raises(EarthgenError, match="bad.yaml: invalid YAML at line"):
        load_dataset_config(bad)
    with pytest.raises(EarthgenError, match="cannot read dataset config"):
        load_dataset_config(tmp_path / "nope.yaml")

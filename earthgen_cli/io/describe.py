"""`earthgen info` for rasters: what a GIS user wants to know before translating one."""

from __future__ import annotations

import json
from dataclasses import asdict

from earthgen_cli.io.raster import STDIO, open_raster, raster_info


def describe_raster(path: str, as_json: bool = False) -> str:
    with open_raster(path, allow_no_crs=True) as src:
        info = raster_info(src, "<stdin>" if path == STDIO else path)
        band_dtypes = list(src.dtypes)
    if as_json:
        d = asdict(info)
        d["likely_modality"] = info.likely_modality
        d["dtypes"] = band_dtypes
        return json.dumps(d, default=str, sort_keys=True)
    gsd = f"{info.gsd:.3f} m/px" if info.gsd is not None else "unknown (no CRS)"
    lines = [
        f"raster:    {info.path}",
        f"size:      {info.width} x {info.height} px, {info.count} band(s), {info.dtype}",
        f"crs:       {info.crs or 'none'}",
        f"gsd:       {gsd}",
        f"transform: {', '.join(repr(float(v)) for v in info.transform)}",  # every digit, as gdalinfo
        f"nodata:    {info.nodata}",
        f"blocks:    {info.block_shape[0]} x {info.block_shape[1]}",
        f"modality:  {info.likely_modality or 'ambiguous from band count (use --from)'}"
        + (" (from earthgen tags)" if info.tagged_modality else ""),
        "bands:",
    ]
    for i, (desc, dt) in enumerate(zip(info.descriptions, band_dtypes), start=1):
        lines.append(f"  {i}: {desc or '-'} ({dt})")
    tags = {k: v for k, v in info.tags.items() if k.startswith("EARTHGEN_")}
    if tags:
        lines.append("earthgen tags:")
        lines.extend(f"  {k}={v}" for k, v in sorted(tags.items()))
    return "\n".join(lines)

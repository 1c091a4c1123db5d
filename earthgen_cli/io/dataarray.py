"""xarray DataArrays (rioxarray) to and from GeoTIFF files: how the Python API hands its arrays
to the file-based engine and reads the results back, lazily (dask) when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earthgen_cli.errors import EarthgenError


def check_dataarray(da: Any, what: str) -> None:
    import xarray as xr

    if not isinstance(da, xr.DataArray):
        raise EarthgenError(f"{what}: expected an xarray.DataArray, got {type(da).__name__}")
    if da.ndim == 2:
        return
    if da.ndim != 3 or da.dims[0] != "band":
        raise EarthgenError(f"{what}: expected dims (band, y, x) or (y, x), got {da.dims}")


def write_dataarray(da: Any, path: Path, what: str) -> str:
    """Stream `da` to a tiled GeoTIFF, chunk by chunk when it is dask-backed."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    check_dataarray(da, what)
    arr = da if da.ndim == 3 else da.expand_dims("band")
    if arr.rio.crs is None:
        raise EarthgenError(f"{what}: the DataArray has no CRS (.rio.crs is None); set one with .rio.write_crs")
    arr = arr.copy(deep=False)
    arr.attrs = {k: v for k, v in arr.attrs.items() if k in ("long_name", "_FillValue", "scale_factor", "add_offset")}
    names = arr.attrs.get("long_name")
    if isinstance(names, (tuple, list)) and len(names) != arr.sizes["band"]:
        del arr.attrs["long_name"]  # band names of another selection (e.g. one band of an RGB)
    blocks = {"blockxsize": 256, "blockysize": 256} if arr.sizes["x"] >= 256 and arr.sizes["y"] >= 256 else {}
    arr.rio.to_raster(str(path), tiled=bool(blocks), windowed=True, **blocks)
    return str(path)


def read_dataarray(path: str | Path, lazy: bool):
    import rioxarray

    da = rioxarray.open_rasterio(path, chunks={"band": -1, "y": 1024, "x": 1024} if lazy else None)
    return da if lazy else da.load()

"""The only code that imports rasterio/rioxarray/xarray/dask/shapely/pyproj. No torch here."""

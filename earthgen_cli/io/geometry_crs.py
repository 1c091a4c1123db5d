"""Moving shapely geometries between coordinate reference systems (pyproj, always x/y order)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def reprojector(src_crs, dst_crs) -> Callable:
    """geometry in `src_crs` -> the same geometry in `dst_crs` (vertices transformed exactly;
    segmentize first where straight edges should bend)."""
    import shapely
    from pyproj import CRS, Transformer

    t = Transformer.from_crs(CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs),
                             always_xy=True)

    def coords(xy: np.ndarray) -> np.ndarray:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return lambda geom: shapely.transform(geom, coords)

"""The atomic GeoTIFF writer and the EARTHGEN_* tags every output carries.

`GeoTiffWriter` writes a tiled, compressed GeoTIFF by windows to a temporary file beside the target
and renames it into place on commit (or streams it to stdout for `-`); `OutputSpec` says what it
writes. `provenance_tags` and `inherited_tags` build the dataset tags: the run's own EARTHGEN_*
provenance, and the input's history renamed so that it is never mistaken for the output's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import rasterio
from rasterio.errors import RasterioError
import rasterio.shutil
from rasterio.windows import Window

from earthgen_cli import __version__
from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.publish import STDIO, publish_file
from earthgen_cli.io.scratch import scratch_folder_for, temp_file

TAG_PREFIX = "EARTHGEN_"


def inherited_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """An output's dataset tags from its input's: the input's own tags as they are, its EARTHGEN_*
    provenance renamed EARTHGEN_INPUT_*. An input that earthgen made keeps its history as a chain
    (EARTHGEN_INPUT_INPUT_* one step further back), and the output's own EARTHGEN_* tags are
    never mistaken for the input's."""
    n = len(TAG_PREFIX)
    return {(f"{TAG_PREFIX}INPUT_{k[n:]}" if k.startswith(TAG_PREFIX) else k): v for k, v in tags.items()}


def provenance_tags(**items: Any) -> dict[str, str]:
    tags = {TAG_PREFIX + "VERSION": __version__}
    tags.update({TAG_PREFIX + k.upper(): str(v) for k, v in items.items() if v is not None})
    return tags


@dataclass(frozen=True)
class OutputSpec:
    path: str
    count: int
    dtype: str
    nodata: float | None
    descriptions: tuple[str | None, ...]
    tags: Mapping[str, str]
    band_tags: tuple[Mapping[str, str], ...] = ()
    cog: bool = False
    blocksize: int = 512
    compress: str = "DEFLATE"
    overwrite: bool = False  # replace an existing target at commit (io.publish's rule otherwise)


class GeoTiffWriter:
    """Tiled, compressed GeoTIFF written by windows to a temporary file beside the target.

    `commit()` (or leaving the `with` block normally) renames it into place; any exception removes
    it, so a failed run leaves neither a partial output nor a stray temporary file, and a previous
    output stays untouched. With `cog=True` the finished file is converted by GDAL's COG driver
    (internal overviews, tiling, ordering that the COG specification requires).
    """

    def __init__(self, like: rasterio.DatasetReader, spec: OutputSpec) -> None:
        self.spec = spec
        self._stdout = spec.path == STDIO
        tmp = str(temp_file(scratch_folder_for(spec.path), ".tmp.tif", label=spec.path))
        self.tmp_path = tmp
        profile = {
            "driver": "GTiff",
            "width": like.width,
            "height": like.height,
            "count": spec.count,
            "dtype": spec.dtype,
            "crs": like.crs,
            "transform": like.transform,
            "nodata": spec.nodata,
            "tiled": True,
            "blockxsize": spec.blocksize,
            "blockysize": spec.blocksize,
            "compress": spec.compress,
            "interleave": "pixel" if spec.count <= 4 else "band",
            "BIGTIFF": "IF_SAFER",
            # Blocks never written are left out rather than filled in on close: an aborted run's
            # close is then instant (GDAL would otherwise write every missing block of a huge scene
            # before the file is deleted). A finished output has every block written, except those
            # entirely nodata, which GDAL reads back as nodata.
            "SPARSE_OK": True,
        }
        try:
            try:
                self.dst = rasterio.open(tmp, "w", **profile)
            except RasterioError as exc:
                raise EarthgenError(f"{spec.path}: cannot create output ({exc})") from None
            for i, desc in enumerate(spec.descriptions, start=1):
                if desc:
                    self.dst.set_band_description(i, desc)
            self.dst.update_tags(**spec.tags)
            for i, btags in enumerate(spec.band_tags, start=1):
                if btags:
                    self.dst.update_tags(i, **btags)
        except Exception:
            self._remove(tmp)
            raise
        self._done = False

    def write(self, data: np.ndarray, window: Window) -> None:
        self.dst.write(data, window=window)

    def commit(self) -> None:
        self.dst.close()
        final_tmp = self.tmp_path
        try:
            if self.spec.cog:
                final_tmp = self.tmp_path[: -len(".tmp.tif")] + ".cog.tmp.tif"
                rasterio.shutil.copy(self.tmp_path, final_tmp, driver="COG",
                                     COMPRESS=self.spec.compress, BLOCKSIZE=self.spec.blocksize,
                                     OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
                                     NUM_THREADS="ALL_CPUS")
                self._remove(self.tmp_path)
            if self._stdout:
                with open(final_tmp, "rb") as fh:
                    shutil.copyfileobj(fh, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                self._remove(final_tmp)
            else:
                publish_file(final_tmp, self.spec.path, self.spec.overwrite)
        except BaseException:
            self._remove(self.tmp_path)
            self._remove(final_tmp)
            raise
        self._done = True

    def abort(self) -> None:
        if not self._done:
            with contextlib.suppress(Exception):
                self.dst.close()
            self._remove(self.tmp_path)
            self._remove(self.tmp_path[: -len(".tmp.tif")] + ".cog.tmp.tif")
            self._done = True

    @staticmethod
    def _remove(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)

    def __enter__(self) -> "GeoTiffWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

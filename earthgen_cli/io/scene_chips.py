"""One scene's share of a build: read its chips window by window, filter, write, sample statistics.

This is the unit of parallel work (one dask task per scene). It only writes the zarr chunks of the
rows it was given, so scenes never touch each other's chunks and threads or processes can run it
side by side. Train chips contribute a bounded random sample of valid values per band (for the
robust percentiles) and exact sums (for mean/std). A source with `captions: {from: osm}` gets
each kept chip's caption from its OSM chip here, while the pixels are at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.alignment import AlignedScene
from earthgen_cli.io.captions import osm_caption
from earthgen_cli.io.chip_windows import ChipFilter, ChipWindow
from earthgen_cli.io.scene_inputs import Grid, SceneInput

SAMPLES_PER_CHIP = 512  # valid values per band per train chip kept for the percentiles
WRITE_BLOCK_BYTES = 32 * 2**20  # chips buffered per scene before one write per modality


@dataclass(frozen=True)
class SceneTask:
    scene: SceneInput
    ref: Grid
    windows: tuple[ChipWindow, ...]
    rows: tuple[int, ...]  # zarr row of each window
    splits: tuple[str, ...]
    seed: int
    osm_captions: bool = False  # caption every kept chip from its osm chip (io/captions.py)


@dataclass
class BandSums:
    count: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray
    samples: list[np.ndarray] = field(default_factory=list)  # per chip: (C, k)

    @classmethod
    def empty(cls, bands: int) -> "BandSums":
        z = np.zeros(bands, dtype=np.float64)
        return cls(z.copy(), z.copy(), z.copy())

    def add(self, data: np.ndarray, rng: np.random.Generator) -> None:
        bands = data.shape[0]
        flat = data.reshape(bands, -1).astype(np.float64)
        ok = np.isfinite(flat)
        self.count += ok.sum(axis=1)
        self.total += np.where(ok, flat, 0.0).sum(axis=1)
        self.total_sq += np.where(ok, flat * flat, 0.0).sum(axis=1)
        cols = ok.all(axis=0).nonzero()[0]
        if cols.size:
            pick = rng.choice(cols, size=min(SAMPLES_PER_CHIP, cols.size), replace=False)
            self.samples.append(flat[:, pick].astype(np.float32))

    def merge(self, other: "BandSums") -> None:
        self.count += other.count
        self.total += other.total
        self.total_sq += other.total_sq
        self.samples.extend(other.samples)


@dataclass
class SceneResult:
    scene_id: str
    source: str
    kept: list[tuple[int, tuple[str, ...]]]  # (row, modalities present)
    dropped: dict[str, int]
    sums: dict[str, BandSums]  # modality -> train statistics
    offsets: dict[str, tuple[float, float, bool]]  # modality -> (shift px, scale, warped)
    error: str | None = None
    captions: dict[int, str] = field(default_factory=dict)  # row -> caption (osm_captions tasks)


def _open_arrays(store: Path, names: tuple[str, ...]) -> dict:
    import zarr

    return {n: zarr.open_array(store / n, mode="r+") for n in names}


def extract_scene(task: SceneTask, store: str, chip_filter: ChipFilter, skip_bad: bool) -> SceneResult:
    """Read, filter and write every chip of one scene (vector OSM rendered chip by chip)."""
    scene = task.scene
    names = tuple(m.name for m in scene.modalities) + (("osm",) if scene.osm else ())
    dtypes = {m.name: m.dtype for m in scene.modalities}
    dtypes["osm"] = "uint8"
    result = SceneResult(scene.scene_id, scene.source, [], {}, {}, {})
    try:
        arrays = _open_arrays(Path(store), names)
        with AlignedScene(scene, task.ref) as aligned:
            result.offsets = {k: (o.shift_px, o.scale, o.warped) for k, o in aligned.offsets.items()}
            osm_layer = None
            if scene.osm is not None:
                from earthgen_cli.io.osm_render import OsmLayer

                osm_layer = OsmLayer.load(scene.osm.path, scene.osm.file_format, task.ref)
            bands = {n: arrays[n].shape[1] for n in names}
            size = task.windows[0].size if task.windows else 0
            # Rows of a scene are consecutive: write them in blocks (one zarr call per block and
            # modality, far cheaper than one per chip). Dropped rows stay NaN = the fill value,
            # and zarr does not store chunks that hold only the fill value.
            per_row = sum(bands.values()) * size * size * 4
            block = max(1, min(64, WRITE_BLOCK_BYTES // max(per_row, 1)))
            for start in range(0, len(task.windows), block):
                stop = min(start + block, len(task.windows))
                bufs = {n: np.full((stop - start, bands[n], size, size), np.nan, np.float32)
                        for n in names}
                for k in range(start, stop):
                    window, row, split = task.windows[k], task.rows[k], task.splits[k]
                    chips = {}
                    reason = None
                    for name in names:
                        if name == "osm" and osm_layer is not None:  # vector OSM, rendered here
                            data = osm_layer.read(window)
                        else:
                            data = aligned.read(name, window.row, window.col, window.size)
                        reason = chip_filter.reason_to_drop(name, dtypes[name], data,
                                                            bool(scene.flags))
                        if reason:
                            break
                        chips[name] = data
                    if reason:
                        result.dropped[reason] = result.dropped.get(reason, 0) + 1
                        continue
                    for name, data in chips.items():
                        bufs[name][k - start] = data
                        if split == "train":
                            rng = np.random.default_rng([task.seed, row])
                            result.sums.setdefault(name, BandSums.empty(data.shape[0])).add(data, rng)
                    result.kept.append((row, names))
                    if task.osm_captions:
                        result.captions[row] = osm_caption(chips["osm"])
                for name in names:
                    arrays[name][task.rows[start]:task.rows[stop - 1] + 1] = bufs[name]
    except EarthgenError as exc:
        if not skip_bad:
            raise
        # whatever this scene wrote is unreachable: its rows are not in the chips table
        return SceneResult(scene.scene_id, scene.source, [], {}, {}, {}, str(exc))
    return result

"""Spatially disjoint train/val/test splits, deterministic in `--seed`.

`block`: the ground (each CRS's own coordinates) is cut into square blocks of `block_size` map
units; a block's split is a hash of (seed, CRS, block index), so scenes that share ground in one CRS
share its splits. A chip takes the split of the blocks it touches; a chip that straddles blocks of
different splits is dropped. `scene`: scenes whose footprints overlap form one group and a group's
split is a hash of (seed, first scene id). Whatever the mode, a final check drops every val/test chip
that overlaps a train chip by a positive area (and every test chip over a val chip), so no held-out
chip shares ground with training, even across CRSs.

`holdout`: chips of a source declared `holdout: true` (an out-of-region test set) take this split
whatever the mode; it ranks after test in the final check, so a holdout chip that shares ground with
any train/val/test chip is dropped.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from earthgen_cli.errors import EarthgenError
from earthgen_cli.seeds import key_digest


class SplitBy(str, enum.Enum):
    scene = "scene"
    block = "block"


HOLDOUT = "holdout"
SPLITS = ("train", "val", "test", HOLDOUT)  # rank order of the overlap check


@dataclass(frozen=True)
class SplitPlan:
    by: SplitBy
    seed: int
    val_frac: float
    test_frac: float

    def __post_init__(self) -> None:
        if not (0 <= self.val_frac < 1 and 0 <= self.test_frac < 1
                and self.val_frac + self.test_frac < 1):
            raise EarthgenError(f"split fractions val={self.val_frac} test={self.test_frac} must be "
                                f"in [0, 1) and leave room for train")

    def split_of(self, key: str) -> str:
        u = int.from_bytes(key_digest(self.seed, key), "big") / 2.0 ** 64
        if u < self.test_frac:
            return "test"
        if u < self.test_frac + self.val_frac:
            return "val"
        return "train"


def block_split(plan: SplitPlan, crs_key: str, bounds: tuple[float, float, float, float],
                block_size: float) -> str | None:
    """The split of the blocks under `bounds`, or None when they disagree (chip dropped)."""
    left, bottom, right, top = bounds
    eps = 1e-9 * block_size  # a chip edge lying on a block edge does not enter the next block
    i0, i1 = math.floor(left / block_size), math.floor((right - eps) / block_size)
    j0, j1 = math.floor(bottom / block_size), math.floor((top - eps) / block_size)
    splits = {plan.split_of(f"{crs_key}:{i}:{j}") for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)}
    return splits.pop() if len(splits) == 1 else None


def scene_groups(footprints: dict[str, tuple[str | None, tuple[float, float, float, float]]]) -> dict[str, str]:
    """scene id -> id of the first scene of its group of ground-overlapping scenes."""
    from shapely import box

    ids = sorted(footprints)
    parent = {s: s for s in ids}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    lonlat = {s: _lonlat_box(*footprints[s]) for s in ids}
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            pa, pb = lonlat[a], lonlat[b]
            if pa is None or pb is None:
                continue  # plain images: no known ground, each pair its own scene
            if box(*pa).intersection(box(*pb)).area > 0:
                ra, rb = find(a), find(b)
                parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in ids}


def _lonlat_box(crs: str | None, bounds):
    if crs is None:
        return None
    from rasterio.warp import transform_bounds

    return transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)


@dataclass(frozen=True)
class ChipPlace:
    key: int  # the caller's index of the chip
    scene_id: str
    crs: str | None
    bounds: tuple[float, float, float, float]
    split: str


def overlapping_holdout(chips: list[ChipPlace], rel_tol: float = 1e-6) -> set[int]:
    """Keys of val/test chips that share ground with a chip of an earlier split (to drop)."""
    from shapely import STRtree, box

    rank = {s: i for i, s in enumerate(SPLITS)}
    by_crs: dict[str | None, list[ChipPlace]] = {}
    for c in chips:
        by_crs.setdefault(c.crs, []).append(c)
    drop: set[int] = set()
    crs_list = list(by_crs)
    for i, crs_a in enumerate(crs_list):
        for crs_b in crs_list[i:]:
            a_chips, b_chips = by_crs[crs_a], by_crs[crs_b]
            if (crs_a is None) != (crs_b is None):
                continue
            if crs_a is None:  # plain images: only chips of the same image share ground
                polys = [box(*c.bounds) for c in a_chips]
                _mark(a_chips, polys, a_chips, polys, rank, drop, rel_tol, same_scene_only=True)
                continue
            polys_a = [box(*c.bounds) for c in a_chips]
            if crs_a == crs_b:
                _mark(a_chips, polys_a, a_chips, polys_a, rank, drop, rel_tol)
            else:
                from earthgen_cli.io.geometry_crs import reprojector

                to_a = reprojector(crs_b, crs_a)
                polys_b = [to_a(box(*c.bounds).segmentize(
                    (c.bounds[2] - c.bounds[0]) / 8)) for c in b_chips]
                # warped footprints are not exact boxes: tolerate a thin sliver at the seams
                _mark(a_chips, polys_a, b_chips, polys_b, rank, drop, max(rel_tol, 1e-3))
    return drop


def _mark(a_chips, polys_a, b_chips, polys_b, rank, drop, rel_tol, same_scene_only=False) -> None:
    from shapely import STRtree

    tree = STRtree(polys_b)
    for ia, pa in enumerate(polys_a):
        ca = a_chips[ia]
        for ib in tree.query(pa):
            cb = b_chips[int(ib)]
            if ca.split == cb.split or (same_scene_only and ca.scene_id != cb.scene_id):
                continue
            area = pa.intersection(polys_b[int(ib)]).area
            if area > rel_tol * min(pa.area, polys_b[int(ib)].area):
                drop.add(ca.key if rank[ca.split] > rank[cb.split] else cb.key)

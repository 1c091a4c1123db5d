"""The data side of an evaluation: directions (SOURCE:TARGET), batches of chip pairs, which chips
of a split are scored (chip_indices), the PairSource protocol and TensorPairs, a PairSource over
tensors in memory (the built dataset's is dataset_pairs.DatasetPairs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Protocol, Sequence

import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.modalities import BandScaling, get_modality


@dataclass(frozen=True)
class Direction:
    source: str
    target: str

    @property
    def key(self) -> str:
        return f"{self.source}:{self.target}"


def parse_directions(text: str) -> tuple[Direction, ...]:
    """'sar:rgb,rgb:nir' -> directions, each checked against the registry, no repeats."""
    out: list[Direction] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        pieces = part.split(":")
        if len(pieces) != 2 or not all(pieces):
            raise EarthgenError(f"unknown direction {part!r}: write SOURCE:TARGET, e.g. sar:rgb")
        source, target = (get_modality(p.strip()).name for p in pieces)
        if source == target:
            raise EarthgenError(f"direction {part!r} maps a modality to itself")
        d = Direction(source, target)
        if d in out:
            raise EarthgenError(f"direction {part!r} is given twice")
        out.append(d)
    if not out:
        raise EarthgenError(f"no direction in {text!r}")
    return tuple(out)


@dataclass(frozen=True)
class PairBatch:
    source: torch.Tensor  # (B, C_src, H, W) model space
    target: torch.Tensor  # (B, C_tgt, H, W) model space
    valid: torch.Tensor  # (B, H, W) bool: source and target both valid
    gsd: tuple[float, ...]  # metres per pixel per chip (nan when unknown)
    index: tuple[int, ...] = ()  # each chip's position among the direction's chips of the split
    scene: tuple[str, ...] = ()  # each chip's scene
    chip: tuple[str, ...] = ()  # each chip's id in the dataset (chips.csv), when the source has one

    def select(self, keep: list[bool]) -> "PairBatch":
        """The chips where `keep` is true."""
        mask = torch.tensor(keep, dtype=torch.bool)
        pick = lambda t: tuple(v for v, k in zip(t, keep) if k)  # noqa: E731
        return PairBatch(self.source[mask], self.target[mask], self.valid[mask], pick(self.gsd),
                         pick(self.index), pick(self.scene), pick(self.chip))


def chip_indices(total: int, limit: int | None, scenes: Sequence[str] | None = None) -> list[int]:
    """`limit` chips of a split of `total` (all of them without a limit). Without `scenes`: spread
    evenly over the chips. With `scenes` (the scene of each chip): shared out between the scenes
    as evenly as their chips allow (one each round), then spread evenly inside each scene, so the
    chips scored come from as many scenes as possible: the claim rule counts scenes, and a split
    stored scene by scene would give the first N chips from one scene only."""
    if limit is None or limit >= total:
        return list(range(total))
    if scenes is None:
        return sorted({round(k * (total - 1) / max(1, limit - 1)) for k in range(limit)}) if limit > 1 else [0]
    members: dict[str, list[int]] = {}
    for i, scene in enumerate(scenes[:total]):
        members.setdefault(scene, []).append(i)
    quota = dict.fromkeys(members, 0)
    left = limit
    while left > 0:
        for scene, chips in members.items():
            if left > 0 and quota[scene] < len(chips):
                quota[scene] += 1
                left -= 1
    return sorted(chips[i] for scene, chips in members.items() for i in chip_indices(len(chips), quota[scene])
                  if quota[scene] > 0)


class PairSource(Protocol):
    """Chips of a split holding both modalities of a direction, flagged chips already left out
    (unless asked for); chip positions 0..count-1 are stable for one source."""

    name: str  # what the report calls the data (a path)
    scaling: Mapping[str, BandScaling]

    def count(self, split: str, direction: Direction) -> int: ...

    def batches(self, split: str, direction: Direction, batch_size: int, limit: int | None = None,
                indices: list[int] | None = None) -> Iterator[PairBatch]:
        """`limit` chips spread over the split's scenes (chip_indices), or exactly the chips at `indices`."""

    def scenes(self, split: str, direction: Direction | None = None) -> list[str]:
        """The scene of each chip (of the direction; of the whole split with None)."""

    def flagged(self, split: str, direction: Direction) -> int:
        """How many flagged chips of the direction were left out."""


class TensorPairs:
    """A PairSource over tensors in memory: {split: {modality: (N, C, H, W) model space}}, with
    optional {split: {modality: (N, H, W) bool}} validity, {split: [scene per chip]} (default: each
    chip its own scene) and {split: [flags per chip]} ("" = none; flagged chips are left out unless
    `include_flagged`). Chip n of every modality is one place."""

    def __init__(self, name: str, images: Mapping[str, Mapping[str, torch.Tensor]],
                 scaling: Mapping[str, BandScaling],
                 valid: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                 gsd: float = math.nan, scenes: Mapping[str, list[str]] | None = None,
                 flags: Mapping[str, list[str]] | None = None, include_flagged: bool = False) -> None:
        self.name, self.scaling, self.gsd = name, scaling, gsd
        self.images = {s: dict(m) for s, m in images.items()}
        self.valid = {s: dict(m) for s, m in (valid or {}).items()}
        self._scenes = {s: list((scenes or {}).get(s) or [f"{s}-{i}" for i in range(self._size(s))])
                        for s in self.images}
        self._flagged: dict[str, int] = {}
        for split, chip_flags in (flags or {}).items():
            keep = [i for i, f in enumerate(chip_flags) if include_flagged or not f]
            self._flagged[split] = len(chip_flags) - len(keep)
            self.images[split] = {m: v[keep] for m, v in self.images[split].items()}
            self.valid[split] = {m: v[keep] for m, v in self.valid.get(split, {}).items()}
            self._scenes[split] = [self._scenes[split][i] for i in keep]

    def _size(self, split: str) -> int:
        return max((int(v.shape[0]) for v in self.images[split].values()), default=0)

    def scenes(self, split: str, direction: Direction | None = None) -> list[str]:
        return list(self._scenes.get(split, []))

    def flagged(self, split: str, direction: Direction) -> int:
        return self._flagged.get(split, 0)

    def count(self, split: str, direction: Direction) -> int:
        mods = self.images.get(split, {})
        if direction.source not in mods or direction.target not in mods:
            return 0
        return int(mods[direction.source].shape[0])

    def _valid(self, split: str, mod: str) -> torch.Tensor:
        x = self.images[split][mod]
        return self.valid.get(split, {}).get(mod, torch.ones(x.shape[0], *x.shape[-2:], dtype=torch.bool))

    def batches(self, split: str, direction: Direction, batch_size: int, limit: int | None = None,
                indices: list[int] | None = None) -> Iterator[PairBatch]:
        total = self.count(split, direction)
        chosen = chip_indices(total, limit, self.scenes(split)[:total]) if indices is None else list(indices)
        src, tgt = self.images[split][direction.source], self.images[split][direction.target]
        both = self._valid(split, direction.source) & self._valid(split, direction.target)
        for lo in range(0, len(chosen), batch_size):
            idx = chosen[lo : lo + batch_size]
            yield PairBatch(src[idx], tgt[idx], both[idx], (self.gsd,) * len(idx), tuple(idx),
                            tuple(self._scenes[split][i] for i in idx))


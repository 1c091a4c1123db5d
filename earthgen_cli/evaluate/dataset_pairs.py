"""A built dataset (`earthgen build-dataset`) as the evaluation's PairSource, through ChipDataset.

Chips with a non-empty `flags` column (content flags from the dataset config) are left out and
counted unless `include_flagged`; any split name in chips.csv works (train, val, test, holdout)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import torch

from earthgen_cli.evaluate.pair_source import Direction, PairBatch, chip_indices


class DatasetPairs:
    """Chip pairs of one direction per split, in model space with the dataset's normalisation."""

    def __init__(self, path: str | Path, include_flagged: bool = False) -> None:
        from earthgen_cli.data.chips import ChipDataset

        self._chip_dataset = ChipDataset
        self.path = Path(path)
        self.name = str(path)
        self.include_flagged = include_flagged
        everything = ChipDataset(self.path, split=None)
        self.scaling = everything.scaling
        self._built = everything.built
        self._sets: dict[tuple[str, Direction], object] = {}
        self._flagged: dict[tuple[str, Direction], int] = {}

    def _dataset(self, split: str, d: Direction):
        key = (split, d)
        if key not in self._sets:
            # in memory: baselines fit on every train chip, and a zarr read per chip costs ~25 ms
            ds = self._chip_dataset(self.path, split=split, modalities=(d.source, d.target), require_all=True,
                                    in_memory=True)
            kept = [c for c in ds.chips if self.include_flagged or not c.flags]
            self._flagged[key] = len(ds.chips) - len(kept)
            ds.chips = kept
            self._sets[key] = ds
        return self._sets[key]

    def flagged(self, split: str, direction: Direction) -> int:
        if direction.source not in self.scaling or direction.target not in self.scaling:
            return 0
        self._dataset(split, direction)
        return self._flagged[(split, direction)]

    def scenes(self, split: str, direction: Direction | None = None) -> list[str]:
        if direction is None:
            return [c.scene for c in self._built.chips_in(split)]
        if direction.source not in self.scaling or direction.target not in self.scaling:
            return []
        return [c.scene for c in self._dataset(split, direction).chips]

    def count(self, split: str, direction: Direction) -> int:
        if direction.source not in self.scaling or direction.target not in self.scaling:
            return 0
        return len(self._dataset(split, direction))

    def batches(self, split: str, direction: Direction, batch_size: int, limit: int | None = None,
                indices: list[int] | None = None) -> Iterator[PairBatch]:
        ds = self._dataset(split, direction)
        chosen = chip_indices(len(ds), limit, [c.scene for c in ds.chips]) if indices is None else list(indices)
        s, t = direction.source, direction.target
        for lo in range(0, len(chosen), batch_size):
            idx = chosen[lo : lo + batch_size]
            items = [ds[i] for i in idx]
            valid = torch.stack([it["valid"][s] & it["valid"][t] for it in items])  # (B, H, W)
            gsd = tuple(float(it["gsd"]) if math.isfinite(float(it["gsd"])) else math.nan for it in items)
            yield PairBatch(torch.stack([it["images"][s] for it in items]),
                            torch.stack([it["images"][t] for it in items]), valid, gsd, tuple(idx),
                            tuple(ds.chips[i].scene for i in idx), tuple(ds.chips[i].id for i in idx))

    def split_size(self, split: str) -> int:
        return len(self._built.chips_in(split))

    def pairs_with_chips(self, split: str) -> list[Direction]:
        """Every ordered direction with at least one chip of `split` holding both modalities."""
        mods = list(self.scaling)
        found = []
        for a in mods:
            for b in mods:
                if a != b and self.count(split, Direction(a, b)) > 0:
                    found.append(Direction(a, b))
        return found

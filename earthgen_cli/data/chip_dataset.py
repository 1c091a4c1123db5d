"""Torch access to a built dataset (`earthgen build-dataset`): chips and modality-pair batches.

`ChipDataset[i]` gives one chip with every requested modality it holds; `ChipDataset[(i, mods)]`
gives exactly the modalities `mods` of chip i (what `PairBatchSampler` asks for). Values are mapped
to model space with the dataset's normalisation (train-split statistics; never per chip), nodata
becomes 0 with a `<modality>_valid` mask beside it. The zarr arrays are opened lazily in each
DataLoader worker, so workers and separate processes read chips independently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_store import BuiltDataset, ChipRecord, open_dataset
from earthgen_cli.modalities import BandScaling


class ChipDataset(Dataset):
    def __init__(self, path: str | Path, split: str | None = "train",
                 modalities: Sequence[str] | None = None, require_all: bool = False):
        self.built: BuiltDataset = open_dataset(path)
        known = self.built.modalities
        self.modalities = tuple(modalities) if modalities else known
        unknown = [m for m in self.modalities if m not in known]
        if unknown:
            raise EarthgenError(f"{path}: dataset has no modality {', '.join(unknown)} "
                                f"(it has {', '.join(known)})")
        wanted = set(self.modalities)
        self.chips: list[ChipRecord] = [
            c for c in self.built.chips_in(split)
            if (wanted <= set(c.modalities) if require_all else wanted & set(c.modalities))]
        norm = self.built.meta["normalisation"]
        self.scaling = {m: BandScaling.from_json(norm[m]) for m in self.modalities}
        self._arrays: dict | None = None

    def __len__(self) -> int:
        return len(self.chips)

    def _array(self, name: str):
        if self._arrays is None:  # opened in the worker process that reads
            import zarr

            group = zarr.open_group(self.built.arrays_path, mode="r")
            self._arrays = {m: group[m] for m in self.modalities}
        return self._arrays[name]

    def __getitem__(self, key) -> dict:
        if isinstance(key, tuple):
            index, names = key
        else:
            index, names = key, None
        chip = self.chips[int(index)]
        present = tuple(m for m in self.modalities if m in chip.modalities)
        names = tuple(names) if names is not None else present
        missing = [m for m in names if m not in chip.modalities]
        if missing:
            raise EarthgenError(f"{self.built.path}: chip {chip.id} has no {', '.join(missing)}")
        sample: dict = {"id": chip.id, "split": chip.split, "crs": chip.crs,
                        "bounds": torch.tensor(chip.bounds, dtype=torch.float64),
                        "gsd": torch.tensor(chip.gsd if not math.isnan(chip.gsd) else float("nan")),
                        "modalities": names}
        for m in names:
            raw = np.asarray(self._array(m)[chip.row], dtype=np.float32)  # (C, H, W)
            valid = np.isfinite(raw).all(axis=0, keepdims=True)
            x = self.scaling[m].to_model(np.nan_to_num(raw, nan=0.0))
            x[:, ~valid[0]] = 0.0
            sample[m] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            sample[f"{m}_valid"] = torch.from_numpy(valid)
        return sample

    def pair_index(self) -> dict[tuple[str, str], list[int]]:
        """(a, b) -> indexes of chips holding both, for every pair present (registry order)."""
        pairs: dict[tuple[str, str], list[int]] = {}
        for i, c in enumerate(self.chips):
            have = [m for m in self.modalities if m in c.modalities]
            for ai, a in enumerate(have):
                for b in have[ai + 1:]:
                    pairs.setdefault((a, b), []).append(i)
        return pairs


class PairBatchSampler(Sampler):
    """Batches whose samples all hold one modality pair, the pair drawn uniformly over the pairs
    present (MetaEarth-MM: uniform pair sampling against pair imbalance), then chips uniformly
    among those holding it. Deterministic in (seed, epoch); `rank`/`world_size` give each DDP
    process its own share of the batches. Use as `DataLoader(ds, batch_sampler=...)`."""

    def __init__(self, dataset: ChipDataset, batch_size: int, batches: int, seed: int = 0,
                 pairs: Sequence[tuple[str, str]] | None = None, rank: int = 0,
                 world_size: int = 1):
        index = dataset.pair_index()
        if pairs is not None:
            index = {tuple(p): index[tuple(p)] for p in pairs if tuple(p) in index}
        if not index:
            raise EarthgenError(f"{dataset.built.path}: no chip holds two of "
                                f"{', '.join(dataset.modalities)}; nothing to pair")
        self.pairs = sorted(index)
        self.index = index
        self.batch_size = batch_size
        self.batches = batches
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.batches, self.world_size))

    def __iter__(self) -> Iterator[list[tuple[int, tuple[str, str]]]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for b in range(self.batches):
            pair = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=g))]
            chips = self.index[pair]
            pick = torch.randint(len(chips), (self.batch_size,), generator=g)
            if b % self.world_size == self.rank:  # every rank draws all, keeps its own
                yield [(chips[int(i)], pair) for i in pick]

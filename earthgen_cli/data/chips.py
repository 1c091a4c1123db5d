"""Torch access to a built dataset (`earthgen build-dataset`): chips and modality-pair batches.

`ChipDataset[i]` gives one chip with every requested modality it holds; `ChipDataset[(i, mods)]`
gives exactly the modalities `mods` of chip i (what `PairBatchSampler` asks for). Values are mapped
to model space with the dataset's normalisation (train-split statistics; never per chip), nodata
becomes 0 with a validity mask beside it. The zarr arrays are opened lazily in each
DataLoader worker, so workers and separate processes read chips independently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.dataset_store import BuiltDataset, ChipRecord, open_dataset
from earthgen_cli.modalities import BandScaling


class ChipDataset(Dataset):
    """Chips of one split. `ds[i]` holds every requested modality chip i has; `ds[(i, mods)]`
    exactly `mods` (what `PairBatchSampler` asks for). A sample is
    `{"index", "chip_id", "split", "crs", "bounds", "gsd", "modalities",
      "images": {mod: (C, H, W) float32 in model space}, "valid": {mod: (H, W) bool},
      "caption": the chip's text condition from build-dataset's `captions:` ("" = none)}`.
    """

    def __init__(self, root: str | Path, split: str | None = "train",
                 modalities: Sequence[str] | None = None, require_all: bool = False,
                 in_memory: bool = False):
        self.built: BuiltDataset = open_dataset(root)
        self.root = self.built.path
        self.split = split
        self.chip = int(self.built.meta["chip"])
        known = self.built.modalities
        self.modalities = tuple(modalities) if modalities else known
        unknown = [m for m in self.modalities if m not in known]
        if unknown:
            raise EarthgenError(f"{root}: dataset has no modality {', '.join(unknown)} "
                                f"(it has {', '.join(known)})")
        wanted = set(self.modalities)
        self.chips: list[ChipRecord] = [
            c for c in self.built.chips_in(split)
            if (wanted <= set(c.modalities) if require_all else wanted & set(c.modalities))]
        norm = self.built.meta["normalisation"]
        self.scaling = {m: BandScaling.from_json(norm[m]) for m in self.modalities}
        self.bands = {m: self.scaling[m].bands for m in self.modalities}
        self._arrays: dict | None = None
        # in_memory: read this split's rows once (one bulk read per modality) and serve chips from
        # RAM; a zarr read per chip costs ~25 ms, which made data loading the bottleneck of
        # training small models on a CPU.
        self.in_memory = in_memory

    def __len__(self) -> int:
        return len(self.chips)

    def _array(self, name: str):
        if self._arrays is None:  # opened in the worker process that reads
            self._arrays = self.built.open_arrays(self.modalities)
            if self.in_memory:
                self._arrays = {m: self._load_rows(m, a) for m, a in self._arrays.items()}
        return self._arrays[name]

    def _load_rows(self, modality: str, array) -> dict[int, np.ndarray]:
        """{row: (C, H, W) float32} for this split's chips holding `modality`, read in bulk."""
        rows = sorted({c.row for c in self.chips if modality in c.modalities})
        out: dict[int, np.ndarray] = {}
        start = 0
        for i in range(1, len(rows) + 1):  # one read per run of consecutive rows (a scene's chips)
            if i == len(rows) or rows[i] != rows[i - 1] + 1:
                block = np.asarray(array[rows[start]:rows[i - 1] + 1], dtype=np.float32)
                out.update({r: block[r - rows[start]] for r in rows[start:i]})
                start = i
        return out

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
        images, valids = {}, {}
        for m in names:
            raw = np.asarray(self._array(m)[chip.row], dtype=np.float32)  # (C, H, W)
            valid = np.isfinite(raw).all(axis=0)
            x = self.scaling[m].to_model(np.nan_to_num(raw, nan=0.0))
            x[:, ~valid] = 0.0
            images[m] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            valids[m] = torch.from_numpy(valid)
        return {"index": int(index), "chip_id": chip.id, "split": chip.split, "crs": chip.crs,
                "bounds": torch.tensor(chip.bounds, dtype=torch.float64),
                "gsd": torch.tensor(chip.gsd, dtype=torch.float32), "modalities": names,
                "images": images, "valid": valids, "caption": chip.caption}

    def pairs(self) -> dict[tuple[str, str], list[int]]:
        """(a, b) -> indexes of chips holding both, for every pair present (registry order)."""
        pairs: dict[tuple[str, str], list[int]] = {}
        for i, c in enumerate(self.chips):
            have = [m for m in self.modalities if m in c.modalities]
            for ai, a in enumerate(have):
                for b in have[ai + 1:]:
                    pairs.setdefault((a, b), []).append(i)
        return pairs


def pair_index(dataset, names: Sequence[str | tuple[str, str]] | None = None,
               where: str = "") -> dict[tuple[str, str], list[int]]:
    """`dataset.pairs()` (a ChipDataset's, or a subset's) for the pairs `names` (`data.pairs`:
    "rgb+nir" or ("rgb", "nir"), either order), each under the dataset's own key; None or empty:
    every pair present. A pair no chip of the split holds is a configuration mistake, not an empty
    draw: refused, after `where`."""
    present = dataset.pairs()
    if not names:
        return present
    out = {}
    for name in names:
        parts = tuple(name.split("+")) if isinstance(name, str) else tuple(name)
        key = next((k for k in present if set(k) == set(parts)), None) if len(parts) == 2 else None
        if key is None:
            have = ", ".join("+".join(k) for k in present) or "none"
            shown = name if isinstance(name, str) else "+".join(name)
            raise EarthgenError(f"{where + ': ' if where else ''}data.pairs names {shown!r}, which no "
                                f"{dataset.built.path} chip of this split holds (pairs present: {have})")
        out[key] = present[key]
    return out


class PairBatchSampler(Sampler):
    """Batches whose samples all hold one modality pair: the pair drawn uniformly over the pairs
    present (MetaEarth-MM: uniform pair sampling against pair imbalance), then chips uniformly
    among those holding it (`balance="chip"`), or (`balance="scene"`) each sample's scene uniformly
    among the scenes holding the pair, then a chip of it: the same remedy one level down, so one
    large scene (a whole Sentinel-2 tile, 300+ chips) does not outweigh twenty small ones.

    Stateless: the batch of step s on rank r comes from a generator seeded by (seed, s, r), so a
    run resumed at step s sees exactly the data it would have seen, whatever happened before.
    `pairs`: draw from these only (`pair_index`: a pair no chip holds is refused).
    Yields `steps` batches from `start_step` (endless when `steps` is None). Use as
    `DataLoader(ds, batch_sampler=...)`; every sample of a batch shares its pair, so torch's
    default collate stacks them.
    """

    def __init__(self, dataset: ChipDataset, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, start_step: int = 0, steps: int | None = None,
                 pairs: Sequence[str | tuple[str, str]] | None = None, balance: str = "chip"):
        index = pair_index(dataset, pairs)
        if not index:
            raise EarthgenError(f"{dataset.built.path}: no chip holds two of "
                                f"{', '.join(dataset.modalities)}; nothing to pair")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if balance not in ("chip", "scene"):
            raise ValueError(f"balance must be 'chip' or 'scene', got {balance!r}")
        self.pairs = sorted(index)
        self.index = index
        self.balance = balance
        self.by_scene: dict[tuple[str, str], list[list[int]]] = {}
        if balance == "scene":
            for pair, chips in index.items():
                groups: dict[str, list[int]] = {}
                for i in chips:
                    groups.setdefault(dataset.chips[i].scene, []).append(i)
                self.by_scene[pair] = [groups[k] for k in sorted(groups)]
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.start_step, self.steps = start_step, steps

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless PairBatchSampler has no length")
        return self.steps

    def batch(self, step: int) -> list[tuple[int, tuple[str, str]]]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 4099 + self.rank)
        pair = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=g))]
        if self.balance == "scene":
            scenes = self.by_scene[pair]
            which = torch.randint(len(scenes), (self.batch_size,), generator=g)
            within = torch.rand(self.batch_size, generator=g, dtype=torch.float64)
            return [(scenes[int(s)][min(int(u * len(scenes[int(s)])), len(scenes[int(s)]) - 1)], pair)
                    for s, u in zip(which, within)]
        chips = self.index[pair]
        pick = torch.randint(len(chips), (self.batch_size,), generator=g)
        return [(chips[int(i)], pair) for i in pick]

    def __iter__(self) -> Iterator[list[tuple[int, tuple[str, str]]]]:
        step = self.start_step
        while self.steps is None or step < self.start_step + self.steps:
            yield self.batch(step)
            step += 1

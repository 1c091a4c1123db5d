"""Chip captions -> text-condition vectors for training with `data.text` (Text2Earth).

Every distinct caption of the training chips is embedded once, before the first step, with the
sentence encoder `--prompt` uses at inference (earthgen_cli/text.py), so training and sampling see
the same vectors. Datasets repeat few captions (one per scene from a CSV, a few hundred OSM
phrasings), so the table stays small and lives in memory; every rank builds the same one.
A chip without a caption gets a NaN row: the model uses its learned null text there, the same
embedding that condition dropout trains for classifier-free guidance.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.text import TEXT_DIM, encode_texts


class CaptionTable:
    def __init__(self, captions: Sequence[str], vectors: np.ndarray) -> None:
        if vectors.shape != (len(captions), TEXT_DIM):
            raise ValueError(f"{len(captions)} captions but vectors of shape {vectors.shape}")
        self.index = {c: i for i, c in enumerate(captions)}
        # last row: NaN, what a chip without a caption looks up
        self.vectors = torch.cat([torch.from_numpy(vectors), torch.full((1, TEXT_DIM), float("nan"))])

    @classmethod
    def for_dataset(cls, data, config: str) -> "CaptionTable":
        """The table of a ChipDataset (or ChipSubset); `config` (the training config) and the
        dataset's folder are named in errors."""
        captions = sorted({data.chips[i].caption for i in range(len(data))} - {""})
        if not captions:
            raise EarthgenError(f"{data.built.path}: data.text is on but no {data.split} chip has a caption; give "
                                f"its sources captions: in the build-dataset config and rebuild it")
        return cls(captions, encode_texts(captions, f"{config}: data.text"))

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, captions: Sequence[str]) -> torch.Tensor:
        """(B, TEXT_DIM) float32; NaN rows for "" (and for any caption not in the table)."""
        rows = [self.index.get(c, len(self.index)) for c in captions]
        return self.vectors[torch.tensor(rows, dtype=torch.long)]

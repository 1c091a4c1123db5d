"""From dataset samples to training batches: collation, crops and augmentations, pseudo-PAN,
and a chip subset for overfitting checks. Every random choice comes from the caller's generator,
seeded per step and rank, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from earthgen_cli.modalities import LUMA_WEIGHTS
from earthgen_cli.modalities import BandScaling


@dataclass
class Batch:
    mods: tuple[str, ...]  # the slot modalities, shared by every sample
    images: list[torch.Tensor]  # per slot (B, C, H, W) model space
    valid: list[torch.Tensor]  # per slot (B, H, W) bool
    gsd: torch.Tensor  # (B,) m/px, NaN when unknown
    index: torch.Tensor  # (B,) chip index: the same chip twice in a batch is one scene
    captions: tuple[str, ...] = ()  # per sample, "" = none (the text condition, train/captions.py)

    @property
    def size(self) -> int:
        return self.gsd.shape[0]

    def slots(self, keep: list[int]) -> "Batch":
        """The batch with only the slots at `keep` (e.g. one modality of a pair)."""
        return replace(self, mods=tuple(self.mods[k] for k in keep), images=[self.images[k] for k in keep],
                       valid=[self.valid[k] for k in keep])

    def to(self, device: torch.device) -> "Batch":
        return replace(self, images=[x.to(device) for x in self.images], valid=[v.to(device) for v in self.valid],
                       gsd=self.gsd.to(device), index=self.index.to(device))


def collate(samples: list[dict]) -> Batch:
    """`ChipDataset[(i, pair)]` samples (data/chips.py) -> one Batch."""
    mods = tuple(samples[0]["modalities"])
    for s in samples:
        if tuple(s["modalities"]) != mods:
            raise ValueError("a batch must hold one modality pair")  # the pair sampler guarantees it
    return Batch(mods, [torch.stack([s["images"][m] for s in samples]) for m in mods],
                 [torch.stack([s["valid"][m] for s in samples]) for m in mods],
                 torch.stack([torch.as_tensor(s["gsd"], dtype=torch.float32) for s in samples]),
                 torch.tensor([int(s["index"]) for s in samples]), tuple(s.get("caption", "") for s in samples))


def crop_and_augment(batch: Batch, crop: int, augment: bool, g: torch.Generator) -> Batch:
    """Per sample: one random crop window and one of the 8 flips/rotations, the same for every slot
    (slots are co-registered; transforming them differently would destroy the pairing)."""
    h, w = batch.images[0].shape[-2:]
    if crop and (crop > h or crop > w):
        raise ValueError(f"data.crop {crop} is larger than the {h}x{w} chips")
    images = [x.clone() for x in batch.images]
    valid = [v.clone() for v in batch.valid]
    ch, cw = (crop, crop) if crop else (h, w)
    out_i = [x[..., :ch, :cw].clone() for x in images]
    out_v = [v[..., :ch, :cw].clone() for v in valid]
    for b in range(batch.size):
        r = int(torch.randint(0, h - ch + 1, (1,), generator=g))
        c = int(torch.randint(0, w - cw + 1, (1,), generator=g))
        rot = int(torch.randint(0, 4, (1,), generator=g)) if augment and ch == cw else 0
        flip = bool(torch.randint(0, 2, (1,), generator=g)) if augment else False
        for k in range(len(images)):
            x, v = images[k][b, :, r:r + ch, c:c + cw], valid[k][b, r:r + ch, c:c + cw]
            if flip:
                x, v = x.flip(-1), v.flip(-1)
            out_i[k][b] = torch.rot90(x, rot, (-2, -1))
            out_v[k][b] = torch.rot90(v, rot, (-2, -1))
    return replace(batch, images=out_i, valid=out_v)


def pseudo_pan(batch: Batch, rgb: BandScaling, pan: BandScaling) -> Batch:
    """Replace the slot that is not rgb by a panchromatic band computed from RGB luminance (in raw
    units, then pan's normalisation): a cheap extra rgb<->pan pair where no real PAN exists."""
    i = batch.mods.index("rgb")
    raw = rgb.from_model(batch.images[i])
    lum = sum(w * raw[:, j:j + 1] for j, w in enumerate(LUMA_WEIGHTS))
    mods = tuple("pan" if k != i else "rgb" for k in range(len(batch.mods)))
    images = [batch.images[i] if k == i else pan.to_model(lum) for k in range(len(mods))]
    valid = [batch.valid[i] for _ in mods]
    return replace(batch, mods=mods, images=images, valid=valid)


class ChipSubset:
    """A ChipDataset with its pair index restricted: to the first `n` chips (0 = all; overfitting
    checks) and to chips whose content flags (the data's manifest: "heavy cloudy ...", "snow or
    cloud covers >15%", "water-only ...") contain none of `exclude_flags` (case-insensitive
    substrings; `data.exclude_flags`). Chip indexes stay the dataset's own."""

    def __init__(self, dataset, n: int = 0, exclude_flags: tuple[str, ...] = ()) -> None:
        self.dataset = dataset
        self.n = min(n, len(dataset)) if n else len(dataset)
        words = [w.lower() for w in exclude_flags]
        self.keep = [i for i in range(self.n)
                     if not any(w in (dataset.chips[i].flags or "").lower() for w in words)]

    def __getattr__(self, name: str):  # modalities, scaling, bands, built, ...: the dataset's
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return self.n

    def pairs(self) -> dict[tuple[str, str], list[int]]:
        keep = set(self.keep)
        out = {p: [i for i in idx if i in keep] for p, idx in self.dataset.pairs().items()}
        return {p: idx for p, idx in out.items() if idx}

    def __getitem__(self, key):
        return self.dataset[key]

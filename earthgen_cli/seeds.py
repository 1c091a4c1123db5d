"""Seeds derived from key parts by hashing, so a draw depends on what it is for, not on the order
in which draws happen (a noise cell, a training micro-step, an evaluation item, a split).

The key is the parts formatted as in an f-string and joined by ":" (`key_digest(7, "rgb:nir")`
hashes b"7:rgb:nir", as `f"{seed}:{key}"` did); the hash is an 8-byte BLAKE2b. Each caller keeps
the key layout and the reduction it has always used, because changing either changes every seed
derived from it (`tests/test_noise.py` pins values):

- `derive_seed`: the digest read little-endian, shifted right by one (63 bits): training micro-steps
  (`train.loop.step_generator`), evaluation items (`evaluate.fit`).
- `inference.noise`: the digest read little-endian with its top bit cleared (63 bits).
- `io.splits`: the digest read big-endian as a fraction of 2**64.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator


def key_digest(*parts: object) -> bytes:
    """The 8-byte BLAKE2b digest of the parts joined by ":" (`format(p)`, as in an f-string)."""
    return hashlib.blake2b(":".join(map(format, parts)).encode(), digest_size=8).digest()


def derive_seed(*parts: object) -> int:
    """A 63-bit seed (for `torch.Generator.manual_seed`) that is a pure function of the parts."""
    return int.from_bytes(key_digest(*parts), "little") >> 1


def sampler_seed(*parts: object) -> int:
    """A 23-bit seed derived from the parts, for seeds that are multiplied further (the pair
    sampler's per-step seed, `data.chips.PairBatchSampler`) and must stay within 64 bits."""
    return derive_seed(*parts) >> 40


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Modules built inside draw their initial weights from torch's default generator seeded with
    `seed`, and the caller's random state is restored afterwards: torch.nn's initialisers take no
    generator, so this is the one place where training and the helper fits seed the global one."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield

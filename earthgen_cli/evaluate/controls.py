"""The `shuffled-source` control: the same model, the same seed and noise, but each chip's sources
taken from a chip of *another scene*. What the model keeps of its score without the right input is
what it gets from the data's statistics alone; the gap to the real run is what it takes from the
input (docs/evaluation.md).
"""

from __future__ import annotations

from typing import Sequence


def scene_derangement(scenes: Sequence[str]) -> list[int] | None:
    """For each position, the position of a donor chip from another scene; deterministic (chips
    sorted by scene, ties by position). A true derangement (each chip donates once) when no scene
    holds more than half of the chips: the sorted order shifted by the largest scene's size. When
    one scene holds more, each chip takes the chips of other scenes in turn (some donate twice).
    None with fewer than two scenes: no chip has a donor."""
    n = len(scenes)
    if len(set(scenes)) < 2:
        return None
    order = sorted(range(n), key=lambda i: (scenes[i], i))
    largest = max(scenes.count(s) for s in set(scenes))
    donors = [0] * n
    if 2 * largest <= n:
        for k, i in enumerate(order):
            donors[i] = order[(k + largest) % n]
        return donors
    for k, i in enumerate(order):
        others = [j for j in order if scenes[j] != scenes[i]]
        donors[i] = others[k % len(others)]
    return donors

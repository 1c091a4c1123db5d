"""Step budgets over a finite training split: the baselines and CAS encoders train for a number
of steps, not epochs, so a small split is simply passed over again."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

from earthgen_cli.errors import EarthgenError

T = TypeVar("T")


def cycle_batches(batches: Callable[[], Iterable[T]], steps: int, what: str) -> Iterator[T]:
    """Exactly `steps` batches; `batches()` starts one pass over the split."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    done = 0
    while done < steps:
        before = done
        for batch in batches():
            yield batch
            done += 1
            if done == steps:
                return
        if done == before:
            raise EarthgenError(f"{what}: the training split has no chips")

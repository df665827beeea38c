"""Which of an episode's decisions become training records.

Consecutive steps of one episode are near-duplicates (same instruction, neighbouring states), so a
fixed budget of training tokens teaches more when spread over more episodes: keeping a few evenly
spaced steps per episode and playing more episodes gives the student more distinct instructions
(e.g. more guard cells to copy) for the same training cost.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

R = TypeVar("R")


def evenly_spaced_steps(n_steps: int, keep: int | None) -> set[int]:
    """`keep` step indices spread over 0..n_steps-1, always including the first (all when None)."""
    if keep is None or keep >= n_steps:
        return set(range(n_steps))
    if keep <= 0:
        return set()
    return {round(i * (n_steps - 1) / max(keep - 1, 1)) for i in range(keep)} if keep > 1 else {0}


def keep_steps(records: Sequence[R], n_steps: int, keep: int | None) -> list[R]:
    """The records (anything with a `.step`) of the kept steps."""
    chosen = evenly_spaced_steps(n_steps, keep)
    return [r for r in records if r.step in chosen]

"""The `evader` emergency family: a new kind of evader, a sprinter, joins the game (docs/emergencies.md).

Pure rules, no episode state. At the onset a new evader appears on a free cell away from the
pursuers. It never rests: every step it makes two runs, each to a free neighbour not held by another
evader (it may run back), the one farthest (BFS) from the nearest pursuer, pursuers' positions before
the step, then with the most free neighbours, then the first of N, S, E, W. It runs through
pursuers: it is captured only when a pursuer ends the step on the cell where it ends. Chasing the
cell where it is (the base functions) therefore misses it; being deterministic, it can be predicted,
and a pursuer that steps onto its predicted cell catches it.
"""

from __future__ import annotations

import random

from generation.ld.envs.pursuit.grid import Cell, Grid

RUNS_PER_STEP = 2


def sprinter_path(grid: Grid, pursuers: list[Cell], here: Cell, taken: set[Cell]) -> list[Cell]:
    """The cells the sprinter stands on this step: [start, after the first run, after the second]."""
    danger = grid.distances(pursuers)
    path = [here]
    for _ in range(RUNS_PER_STEP):
        options = [c for c in grid.neighbours[path[-1]] if c not in taken] or [path[-1]]  # N, S, E, W order
        path.append(max(options, key=lambda c: (danger.get(c, 999), len(grid.neighbours[c]), -options.index(c))))
    return path


def caught_on_path(new_p: dict[str, Cell], path: list[Cell]) -> bool:
    """Only a pursuer ending on the sprinter's final cell catches it (it runs through pursuers)."""
    return path[-1] in new_p.values()


def spawn_cell(grid: Grid, rng: random.Random, pursuers: list[Cell], occupied: set[Cell], min_distance: int) -> Cell:
    """Where the sprinter appears: a free, unoccupied cell at least `min_distance` from every pursuer
    (else one of the farthest)."""
    danger = grid.distances(pursuers)
    spare = [c for c in grid.free if c not in occupied]
    far = [c for c in spare if danger.get(c, 999) >= min_distance]
    if not far:
        farthest = max(danger.get(c, 999) for c in spare)
        far = [c for c in spare if danger.get(c, 999) == farthest]
    return rng.choice(far)

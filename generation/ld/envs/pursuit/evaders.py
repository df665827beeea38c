"""The evaders' seeded heuristic: flee from the nearest pursuer.

Each free evader, in name order, moves with probability `move_prob` (so evaders are slower than
pursuers and the game is winnable). A moving evader picks, among staying and its free neighbour
cells not taken by another evader, the cell with the largest BFS distance from the nearest
pursuer (pursuers' positions before this step), then the most free neighbours (avoids dead ends),
then at random. With probability `noise` it picks uniformly among those options instead.
"""

from __future__ import annotations

import random

from generation.ld.envs.pursuit.grid import Cell, Grid


def choose_evader_moves(grid: Grid, pursuers: list[Cell], evaders: dict[str, Cell], rng: random.Random,
                        move_prob: float, noise: float, occupied: set[Cell] = frozenset()) -> dict[str, Cell]:
    """New cells of the free evaders (simultaneous with the pursuers' moves); `occupied`: cells other
    evaders (an emergency's sprinter, already moved) hold, which these must not take."""
    danger = grid.distances(pursuers)
    taken = set(evaders.values()) | set(occupied)
    new: dict[str, Cell] = {}
    for name in sorted(evaders, key=lambda n: int(n[1:])):
        here = evaders[name]
        taken.discard(here)
        choice = here
        if rng.random() < move_prob:
            options = [here] + [c for c in grid.neighbours[here] if c not in taken]
            if rng.random() < noise:
                choice = rng.choice(options)
            else:
                def score(c: Cell) -> tuple[int, int]:
                    return danger.get(c, 999), len(grid.neighbours[c])
                best = max(score(c) for c in options)
                choice = rng.choice([c for c in options if score(c) == best])
        new[name] = choice
        taken.add(choice)
    return new

"""Emergencies of the pursuit game: which one an episode gets, where it strikes, and how it is told.

An emergency is a set of cells announced at a seeded step (docs/emergencies.md). Its kind fixes the
effect (configs.task_schema.EMERGENCY_KINDS): `deadly` cells end the episode as a failure when a
pursuer ends a step on one; `impassable` cells cannot be entered (a move into one is a stay).
Evaders never enter either. (The third family, `evader`, brings a new evader instead: new_evaders.py.)
The cells are chosen on a shortest path between a pursuer and an evader
(so the emergency matters), never on a pursuer, an evader or the guard cell, and never so that the
free cells fall apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from configs.task_schema import EMERGENCY_KINDS, EmergencyConfig
from generation.ld.envs.base import is_heldout_seed
from generation.ld.envs.pursuit.grid import Cell, Grid

TEXTS = {
    "fire": "a fire broke out; the burning cells are {cells}. A pursuer that ends a step on a burning cell is "
            "lost and the episode fails at once. Evaders never enter burning cells.",
    "lava": "lava flows into cells {cells}. A pursuer that ends a step on lava is lost and the episode fails at "
            "once. Evaders never enter lava.",
    "gas": "toxic gas leaks into cells {cells}. A pursuer that ends a step in the gas is lost and the episode "
           "fails at once. Evaders never enter the gas.",
    "radiation": "cells {cells} are contaminated by radiation. A pursuer that ends a step on a contaminated cell "
                 "is lost and the episode fails at once. Evaders never enter them.",
    "flood": "floodwater fills cells {cells}. Nobody can enter a flooded cell: a move into one means staying "
             "where you are.",
    "barricade": "a barricade blocks the corridor at cells {cells}. Nobody can enter a barricaded cell: a move "
                 "into one means staying where you are.",
    "rockfall": "a rockfall blocks cells {cells}. Nobody can enter a blocked cell: a move into one means "
                "staying where you are.",
    "collapse": "the ground collapsed at cells {cells}. Nobody can enter a collapsed cell: a move into one means "
                "staying where you are.",
}
GENERIC_TEXTS = {  # the other kinds of configs.task_schema.EMERGENCY_KINDS
    "deadly": "cells {cells} are hit by {kind}. A pursuer that ends a step on one of them is lost and the episode "
              "fails at once. Evaders never enter them.",
    "impassable": "cells {cells} are blocked by {kind}. Nobody can enter them: a move into one means staying "
                  "where you are.",
    "evader": "a {kind}, a new kind of evader, appears at {cells} as {evader}; capture it like the others. It "
              "never rests: every step it makes two runs, each to a free neighbour not held by another evader "
              "(it may run back), the one farthest from the nearest pursuer (pursuers' positions before the step), "
              "then with the most free neighbours, then the first of N, S, E, W. It runs through pursuers: it is "
              "captured only when a pursuer ends the step on the cell where the {kind} ends it. The emergency line "
              "of the state gives the cell where the {kind} is.",
}


@dataclass(frozen=True)
class Planned:
    """The emergency an episode will get: its kind and the step after which it is announced."""

    kind: str
    onset: int


def plan_emergency(seed: int, config: EmergencyConfig) -> Planned | None:
    """Seeded: whether this episode gets an emergency, which kind (held-out kinds on held-out seeds), when."""
    rng = random.Random(f"pursuit:{seed}:emergency")
    if config.probability <= 0 or rng.random() >= config.probability:
        return None
    kinds = config.heldout_kinds if is_heldout_seed(seed) else config.train_pool
    return Planned(rng.choice(sorted(kinds)), rng.randint(*config.onset_steps))


def emergency_text(kind: str, step: int, cells: list[Cell], evader: str = "") -> str:
    """The announcement; `evader` names the newcomer of an `evader` emergency (new_evaders.py)."""
    where = " ".join(f"{x},{y}" for x, y in cells)
    template = TEXTS.get(kind) or GENERIC_TEXTS[EMERGENCY_KINDS[kind]]
    return f"Emergency ({kind}) at step {step}: " + template.format(cells=where, kind=kind, evader=evader)


def blocked_rows(rows: list[str], cells: set[Cell]) -> list[str]:
    """The map with `cells` turned into walls."""
    return ["".join("#" if (x, y) in cells else ch for x, ch in enumerate(row)) for y, row in enumerate(rows)]


def _path(grid: Grid, start: Cell, goal: Cell) -> list[Cell]:
    """A shortest path start -> goal (both included), or [] when unreachable."""
    dist = grid.distances([goal])
    if start not in dist:
        return []
    path = [start]
    while path[-1] != goal:
        path.append(min(grid.neighbours[path[-1]], key=lambda c: (dist.get(c, 10 ** 6), c)))
    return path


def _shape(grid: Grid, path: list[Cell], effect: str) -> list[Cell]:
    """Deadly: a blob around a path cell. Impassable: a wall across the path (a blocked corridor)."""
    centre = path[min(2, len(path) - 2)]
    after = path[path.index(centre) + 1]
    if effect == "deadly":
        return [centre] + grid.neighbours[centre]
    dx, dy = after[0] - centre[0], after[1] - centre[1]
    across = [(centre[0] + k * dy, centre[1] + k * dx) for k in (-1, 1, -2, 2)]  # perpendicular to the path
    return [centre] + [c for c in across if grid.is_free(c)]


def choose_cells(grid: Grid, rng: random.Random, kind: str, pursuers: list[Cell], evaders: list[Cell],
                 protected: set[Cell]) -> list[Cell]:
    """Where the emergency strikes: cells on a pursuer's way to an evader, keeping the map connected."""
    taken = set(pursuers) | set(evaders) | protected
    order = list(pursuers)
    rng.shuffle(order)
    for start in order:
        goal = min(evaders, key=lambda e: (len(_path(grid, start, e)) or 10 ** 6, e)) if evaders else None
        path = _path(grid, start, goal) if goal else []
        if len(path) < 3:
            continue
        cells = [c for c in _shape(grid, path, EMERGENCY_KINDS[kind]) if c not in taken]
        while cells and not Grid(blocked_rows(grid.rows, set(cells))).is_connected():
            cells.pop()
        if cells:
            return sorted(set(cells), key=lambda c: (c[1], c[0]))
    spare = [c for c in grid.free if c not in taken and Grid(blocked_rows(grid.rows, {c})).is_connected()]
    return [rng.choice(spare)] if spare else []

"""Grid geometry of the pursuit game: map generation, moves, BFS distances.

Coordinates are (x, y): x is the column (0 = west), y the row (0 = north, the first text row).
A map is a list of row strings, '#' = wall, '.' = free. Free cells are always 4-connected.
"""

from __future__ import annotations

import random
from collections import deque

WALL, FREE = "#", "."
DELTAS = {"N": (0, -1), "S": (0, 1), "E": (1, 0), "W": (-1, 0)}
ACTIONS = ("N", "S", "E", "W", "stay")
Cell = tuple[int, int]


class Grid:
    """An immutable map with precomputed neighbours (moves are looked up, never recomputed)."""

    def __init__(self, rows: list[str]):
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ValueError("map rows must be non-empty and of equal length")
        if any(ch not in (WALL, FREE) for r in rows for ch in r):
            raise ValueError(f"map rows may contain only '{WALL}' and '{FREE}'")
        self.rows = list(rows)
        self.width, self.height = len(rows[0]), len(rows)
        self.free = [(x, y) for y in range(self.height) for x in range(self.width) if rows[y][x] == FREE]
        free_set = set(self.free)
        self.is_free = free_set.__contains__
        self.moves: dict[Cell, dict[str, Cell]] = {}
        for x, y in self.free:
            dest = {"stay": (x, y)}
            for action, (dx, dy) in DELTAS.items():
                nxt = (x + dx, y + dy)
                dest[action] = nxt if nxt in free_set else (x, y)  # wall or edge: stay
            self.moves[(x, y)] = dest
        self.neighbours = {c: [d for a, d in m.items() if a != "stay" and d != c] for c, m in self.moves.items()}

    def move(self, cell: Cell, action: str) -> Cell:
        return self.moves[cell][action]

    def distances(self, sources: list[Cell]) -> dict[Cell, int]:
        """BFS distance from the nearest source to every reachable free cell."""
        dist = {s: 0 for s in sources}
        queue = deque(dist)
        while queue:
            cell = queue.popleft()
            d = dist[cell] + 1
            for nxt in self.neighbours[cell]:
                if nxt not in dist:
                    dist[nxt] = d
                    queue.append(nxt)
        return dist

    def is_connected(self) -> bool:
        return not self.free or len(self.distances([self.free[0]])) == len(self.free)


def generate_rows(rng: random.Random, width: int, height: int, density: float) -> list[str]:
    """Random walls at `density`, skipping any wall that would disconnect the free cells."""
    cells = [[FREE] * width for _ in range(height)]
    target = round(density * width * height)
    order = [(x, y) for y in range(height) for x in range(width)]
    rng.shuffle(order)
    placed = 0
    for x, y in order:
        if placed >= target:
            break
        cells[y][x] = WALL
        if Grid(["".join(r) for r in cells]).is_connected():
            placed += 1
        else:
            cells[y][x] = FREE
    return ["".join(r) for r in cells]

"""The pursuit instructions: what to achieve, as data and as the text prompts show.

- capture_all:   "Capture all evaders."
- capture_first: "Capture E2 first, then capture all evaders."   params {"evader": "E2"}
- guard:         "P2 must guard cell [4, 6] while the others capture all evaders."
                 params {"pursuer": "P2", "cell": [4, 6]}
"""

from __future__ import annotations

import random
import re

from generation.ld.envs.base import Instruction
from generation.ld.envs.pursuit.config import PursuitConfig

_CAPTURE_ALL = re.compile(r"^\s*capture all evaders\.?\s*$", re.IGNORECASE)
_CAPTURE_FIRST = re.compile(r"^\s*capture (E\d+) first,? then capture all evaders\.?\s*$", re.IGNORECASE)
_GUARD = re.compile(r"^\s*(P\d+) must guard cell [\[(]?\s*(\d+)\s*,\s*(\d+)\s*[\])]? while the others capture all "
                    r"evaders\.?\s*$", re.IGNORECASE)


def capture_all() -> Instruction:
    return Instruction(kind="capture_all", params={}, text="Capture all evaders.")


def capture_first(evader: str) -> Instruction:
    return Instruction(kind="capture_first", params={"evader": evader},
                       text=f"Capture {evader} first, then capture all evaders.")


def guard(pursuer: str, cell: tuple[int, int] | list[int]) -> Instruction:
    x, y = int(cell[0]), int(cell[1])
    return Instruction(kind="guard", params={"pursuer": pursuer, "cell": [x, y]},
                       text=f"{pursuer} must guard cell [{x}, {y}] while the others capture all evaders.")


def parse_instruction(text: str) -> Instruction:
    if not isinstance(text, str):
        raise ValueError(f"instruction text must be a string, got {type(text).__name__}")
    if _CAPTURE_ALL.match(text):
        return capture_all()
    if m := _CAPTURE_FIRST.match(text):
        return capture_first(m.group(1).upper())
    if m := _GUARD.match(text):
        return guard(m.group(1).upper(), [int(m.group(2)), int(m.group(3))])
    raise ValueError(f"not a pursuit instruction: {text!r} (expected 'Capture all evaders.', "
                     "'Capture E<k> first, then capture all evaders.' or "
                     "'P<k> must guard cell [x, y] while the others capture all evaders.')")


def sample_instruction(rng: random.Random, config: PursuitConfig, free_cells: list[tuple[int, int]]) -> Instruction:
    kinds = [k for k, w in config.instruction_mix.items() if w > 0]
    kind = rng.choices(kinds, weights=[config.instruction_mix[k] for k in kinds])[0]
    if kind == "capture_first":
        return capture_first(f"E{rng.randint(1, config.n_evaders)}")
    if kind == "guard":
        return guard(f"P{rng.randint(1, config.n_pursuers)}", rng.choice(free_cells))
    return capture_all()


def check_instruction(instruction: Instruction, config: PursuitConfig, free_cells: set) -> None:
    """Raise ValueError naming the problem when `instruction` cannot be played on this map."""
    p = instruction.params
    if instruction.kind == "capture_all":
        return
    if instruction.kind == "capture_first":
        names = [f"E{i}" for i in range(1, config.n_evaders + 1)]
        if p.get("evader") not in names:
            raise ValueError(f"capture_first names evader {p.get('evader')!r}; this game has {names}")
        return
    if instruction.kind == "guard":
        names = [f"P{i}" for i in range(1, config.n_pursuers + 1)]
        if p.get("pursuer") not in names:
            raise ValueError(f"guard names pursuer {p.get('pursuer')!r}; this game has {names}")
        cell = p.get("cell")
        if not (isinstance(cell, (list, tuple)) and len(cell) == 2 and tuple(cell) in free_cells):
            raise ValueError(f"guard cell {cell!r} is not a free cell of this map (sample the instruction "
                             "with the same seed as reset)")
        return
    raise ValueError(f"unknown pursuit instruction kind {instruction.kind!r}")

"""The pursuit state as compact text, and back.

    step 3/40
    map 9x9
    ..#......        (one row per line, y = 0 first; '#' wall, '.' free)
    ...
    P1 2,3           (pursuer at x=2, y=3)
    E1 4,5 free near 2   (free evader; BFS distance to the nearest pursuer = 2)
    E2 captured 1st  (capture order)
    emergency (fire) 3,4 4,4 (an announced emergency and its cells; only once one is announced)

`near` is derived (recomputed from the rest), so `parse_state_text` ignores it: it is printed
because a small student cannot run BFS in its head (the expert's fallback and a raw-action
student both need "which evader is closest").
"""

from __future__ import annotations

import re
from typing import Any

from generation.ld.envs.pursuit.grid import Grid

_STEP = re.compile(r"^step (\d+)/(\d+)$")
_MAP = re.compile(r"^map (\d+)x(\d+)$")
_PURSUER = re.compile(r"^(P\d+) (\d+),(\d+)$")
_FREE = re.compile(r"^(E\d+) (\d+),(\d+) free(?: near \d+)?$")
_CAPTURED = re.compile(r"^(E\d+) captured (\d+)(?:st|nd|rd|th)$")
# The kind sits in parentheses so that it tokenizes exactly as in the name of its function (`move_gas`):
# a student can then copy it from the state into the call, even for a kind it never saw.
_EMERGENCY = re.compile(r"^emergency \(([a-z]+)\)((?: \d+,\d+)+)$")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _by_number(name: str) -> int:
    return int(name[1:])


def render_state(state: dict[str, Any], grid: Grid | None = None) -> str:
    grid = grid or Grid(state["grid"])
    lines = [f"step {state['step']}/{state['max_steps']}", f"map {state['width']}x{state['height']}",
             *state["grid"]]
    for name in sorted(state["pursuers"], key=_by_number):
        x, y = state["pursuers"][name]
        lines.append(f"{name} {x},{y}")
    danger = grid.distances([tuple(p) for p in state["pursuers"].values()])
    order = {name: i + 1 for i, name in enumerate(state["captured"])}
    for name in sorted([*state["evaders"], *state["captured"]], key=_by_number):
        if name in order:
            lines.append(f"{name} captured {_ordinal(order[name])}")
        else:
            x, y = state["evaders"][name]
            lines.append(f"{name} {x},{y} free near {danger.get((x, y), 99)}")
    for entry in state.get("emergencies", []):
        lines.append(f"emergency ({entry['kind']}) " + " ".join(f"{x},{y}" for x, y in entry["cells"]))
    return "\n".join(lines)


def parse_state_text(text: str) -> dict[str, Any]:
    """Inverse of `render_state`; raises ValueError naming the first line it cannot read."""
    if not isinstance(text, str):
        raise ValueError(f"state text must be a string, got {type(text).__name__}")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2 or not (step := _STEP.match(lines[0])) or not (size := _MAP.match(lines[1])):
        raise ValueError("state text must start with 'step S/M' and 'map WxH' lines")
    width, height = int(size.group(1)), int(size.group(2))
    rows = lines[2:2 + height]
    if len(rows) != height or any(len(r) != width or set(r) - {"#", "."} for r in rows):
        raise ValueError(f"state text must have {height} map rows of {width} '#'/'.' characters")
    pursuers: dict[str, list[int]] = {}
    evaders: dict[str, list[int]] = {}
    captured: dict[int, str] = {}
    emergencies: list[dict[str, Any]] = []
    for line in lines[2 + height:]:
        if m := _PURSUER.match(line):
            pursuers[m.group(1)] = [int(m.group(2)), int(m.group(3))]
        elif m := _FREE.match(line):
            evaders[m.group(1)] = [int(m.group(2)), int(m.group(3))]
        elif m := _CAPTURED.match(line):
            captured[int(m.group(2))] = m.group(1)
        elif m := _EMERGENCY.match(line):
            cells = [[int(v) for v in cell.split(",")] for cell in m.group(2).split()]
            emergencies.append({"kind": m.group(1), "cells": cells})
        else:
            raise ValueError(f"cannot read state line {line!r}")
    state = {"width": width, "height": height, "grid": rows, "step": int(step.group(1)),
             "max_steps": int(step.group(2)), "pursuers": pursuers, "evaders": evaders,
             "captured": [captured[k] for k in sorted(captured)]}
    if emergencies:
        state["emergencies"] = emergencies
    return state

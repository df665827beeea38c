"""The expert's decision logic for the pursuit function base: which function, with which arguments.

Pure and text-driven: it needs only what a prompt shows (instruction, parsed state, the previous
stage's result, the candidate names), so the built-in expert teacher can reply through the same
parsers as an LLM. The rule (docs/pursuit.md):

  target stage
    guard instruction           -> guard_cell(pursuer, cell)            (every step)
    capture_first, Ek still free -> target_evader(evader=Ek)
    otherwise                   -> target_nearest()
  move stage
    the plan (previous stage's result) sends two or more pursuers after the same evader
                                -> move_surround()   (they must cut off its escape, not queue up)
    otherwise                   -> move_direct()     (nothing to coordinate: shortest paths)

When the ideal function is not among the candidates it falls back to the next best function of
the same stage (see `_preferences`), then to any function it knows for that stage.
"""

from __future__ import annotations

from typing import Any

from generation.ld.envs.base import Instruction
from generation.ld.envs.expert_tools import choose
from generation.ld.envs.pursuit.grid import Grid
from generation.ld.envs.pursuit.instructions import parse_instruction

FUNCTION_STAGES = {
    "target_nearest": "target", "target_evader": "target", "guard_cell": "target", "spread_out": "target",
    "move_direct": "move", "move_surround": "move", "move_ambush": "move",
}


def nearest_pursuer_distances(state: dict[str, Any]) -> dict[str, int]:
    """BFS distance from each free evader to its nearest pursuer (the state text's `near` value)."""
    grid = Grid(state["grid"])
    danger = grid.distances([tuple(c) for c in state["pursuers"].values()])
    return {e: danger.get(tuple(c), 99) for e, c in state["evaders"].items()}


def shared_target(plan: Any) -> bool:
    """True when the plan sends two or more pursuers after the same evader (cells do not count)."""
    if not isinstance(plan, dict):
        return False
    chased = [t for t in plan.values() if isinstance(t, str)]
    return len(chased) != len(set(chased))


def _closest_evader(state: dict[str, Any]) -> str | None:
    near = nearest_pursuer_distances(state)
    return min(near, key=lambda e: (near[e], int(e[1:]))) if near else None


def _preferences(stage: str, instruction: Instruction, state: dict[str, Any], prev: Any) -> list[tuple[str, dict]]:
    """Calls in order of preference; the first one among the candidates is chosen."""
    p = instruction.params
    if stage == "target":
        closest = _closest_evader(state)
        fallback = [("target_nearest", {})] + ([("target_evader", {"evader": closest})] if closest else [])
        if instruction.kind == "guard":
            return [("guard_cell", {"pursuer": p["pursuer"], "cell": list(p["cell"])})] + fallback
        if instruction.kind == "capture_first" and p["evader"] in state["evaders"]:
            return [("target_evader", {"evader": p["evader"]})] + fallback
        return fallback
    if stage == "move":
        order = ["move_surround", "move_direct"] if shared_target(prev) else ["move_direct", "move_surround"]
        # a function written for an announced emergency (named move_<kind>) knows its new rule
        order = [f"move_{e['kind']}" for e in state.get("emergencies", [])] + order
        return [(name, {}) for name in order]
    raise ValueError(f"unknown pursuit stage {stage!r} (stages: target, move)")


def expert_select(stage: str, instruction: Instruction | str, state: dict[str, Any], prev: Any,
                  candidates: list[str]) -> tuple[str, dict[str, Any]]:
    """The function (name, kwargs) the expert calls for `stage`, chosen among `candidates`."""
    if isinstance(instruction, str):
        instruction = parse_instruction(instruction)
    return choose(_preferences(stage, instruction, state, prev), candidates, stage, FUNCTION_STAGES,
                  last_resort_excluded=("spread_out", "move_ambush"))

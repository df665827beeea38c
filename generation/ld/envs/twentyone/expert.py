"""The expert's decision logic for the 21 Points function base: which function, with which arguments.

Pure and text-driven (it needs only what a selection prompt shows), so the built-in expert teacher
replies through the same parsers as an LLM. The rule (docs/twentyone.md):

  goal stage
    reach T           -> goal_reach_total(total=T)
    cards N           -> goal_card_count(cards=N)
    win, soft hand    -> goal_soft_hand()
    win, hard hand    -> goal_hard_hand()
  action stage
    the plan says double and doubling is allowed -> act_double_down()
    otherwise                                    -> act_follow_plan()

When the ideal function is not among the candidates it takes the next best of the same stage.
"""

from __future__ import annotations

from typing import Any

from generation.ld.envs.base import Instruction
from generation.ld.envs.expert_tools import choose
from generation.ld.envs.twentyone.instructions import parse_instruction

FUNCTION_STAGES = {
    "goal_hard_hand": "goal", "goal_soft_hand": "goal", "goal_reach_total": "goal", "goal_card_count": "goal",
    "goal_never_bust": "goal", "act_follow_plan": "action", "act_double_down": "action",
    "act_always_hit": "action", "act_always_stand": "action",
}


def _preferences(stage: str, instruction: Instruction, state: dict[str, Any], prev: Any) -> list[tuple[str, dict]]:
    p = instruction.params
    if stage == "goal":
        win = ["goal_soft_hand", "goal_hard_hand"] if state["soft"] else ["goal_hard_hand", "goal_soft_hand"]
        if instruction.kind == "reach":
            return [("goal_reach_total", {"total": p["total"]})] + [(n, {}) for n in win]
        if instruction.kind == "cards":
            return [("goal_card_count", {"cards": p["cards"]})] + [(n, {}) for n in win]
        return [(n, {}) for n in win] + [("goal_reach_total", {"total": 17})]
    if stage == "action":
        wants_double = isinstance(prev, dict) and prev.get("double") and state["can_double"]
        order = ["act_double_down", "act_follow_plan"] if wants_double else ["act_follow_plan", "act_double_down"]
        return [(n, {}) for n in order]
    raise ValueError(f"unknown 21 Points stage {stage!r} (stages: goal, action)")


def expert_select(stage: str, instruction: Instruction | str, state: dict[str, Any], prev: Any,
                  candidates: list[str]) -> tuple[str, dict[str, Any]]:
    """The function (name, kwargs) the expert calls for `stage`, chosen among `candidates`."""
    if isinstance(instruction, str):
        instruction = parse_instruction(instruction)
    return choose(_preferences(stage, instruction, state, prev), candidates, stage, FUNCTION_STAGES)

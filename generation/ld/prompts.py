"""Logic Distillation prompts: the teacher writes a function base, then selects one function per stage.

Every prompt starts with a `# Task:` header so that any backend (an LLM, or the scripted expert
teacher, which must reply through the same parsers) knows what is asked. Template versions are
part of the response-cache key, so bump them when a template's text changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FUNCTION_BASE_TASK = "# Task: write the function base"
SELECT_TASK = "# Task: select the function for this stage"
TEMPLATE_VERSION = "ld-v1"

SYSTEM = (
    "You are the planner of a decision task. You turn its rules into small Python functions "
    "and then act only by calling them."
)


@dataclass(frozen=True)
class Candidate:
    """A retrieved function as the policy sees it."""

    name: str
    params: list[str]
    summary: str  # first line of the docstring
    manual: str = ""

    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)})"


def function_base_messages(env_name: str, rules: str, stages: list[str]) -> list[dict[str, str]]:
    user = f"""{FUNCTION_BASE_TASK}
Environment: {env_name}

## Rules
{rules}

## What to write
Decision stages, in order: {", ".join(stages)}. Each step of the game is decided by calling one
function per stage; the last stage's result is the decision.
Write each function as `def name(state, prev, **kwargs)` with a docstring whose first line says
what it does. `state` is the game state as a dict, `prev` is the previous stage's result (None for
the first stage). Return plain data (dicts, lists, strings, numbers). Use only these imports:
math, collections, heapq, itertools, functools. Helpers must have names starting with `_`.

## Reply format
One ```python block with all functions, then a section `## Manual` with, for each function, a
heading `### name`, a line `Stage: <stage>`, when to use it, and an example line
`Call: name(arg="value")`."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _candidate_block(candidates: list[Candidate]) -> str:
    parts = []
    for c in candidates:
        manual = f"\n  {c.manual.strip()}" if c.manual.strip() else ""
        parts.append(f"- {c.signature()}: {c.summary}{manual}")
    return "\n".join(parts)


def selection_messages(rules: str, instruction: str, state_text: str, stage: str, stage_input: str,
                       candidates: list[Candidate]) -> list[dict[str, str]]:
    user = f"""{SELECT_TASK}

## Rules
{rules}

## Instruction
{instruction}

## State
{state_text}

## Stage
{stage}
Input from the previous stage: {stage_input}

## Candidate functions
{_candidate_block(candidates)}

Think briefly, then end with exactly one line of the form
Call: function_name(arg="value", ...)"""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def student_selection_prompt(instruction: str, state_text: str, stage: str, stage_input: str,
                             candidates: list[Candidate]) -> str:
    """The student's compact view of the same decision (no rules, signatures only)."""
    names = " | ".join(c.signature() for c in candidates)
    return (f"Instruction: {instruction}\nState:\n{state_text}\nStage: {stage}\n"
            f"Input: {stage_input}\nCandidates: {names}")


def render_stage_result(result: Any) -> str:
    """A stage's result as the next stage reads it: compact JSON (None for the first stage)."""
    return "none" if result is None else json.dumps(result, separators=(",", ":"), sort_keys=True)

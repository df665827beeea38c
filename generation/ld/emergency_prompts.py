"""The emergency prompt: a new rule appeared mid-episode; the teacher writes functions for it.

Same reply format as the function base (one python block, then `## Manual`), so the same parser and
the same sandbox validation apply. The functions are reused for every later emergency of the same
kind, which is why the prompt shows the state as data and asks to read the details from it.
"""

from __future__ import annotations

import json
from typing import Any

from generation.ld.prompts import SYSTEM, Candidate

EMERGENCY_TASK = "# Task: write functions for an emergency"
TEMPLATE_VERSION = "emergency-v1"


def function_name_hint(stage: str, kind: str) -> str:
    """The name the prompt asks for: `<stage>_<kind>`, so a policy can match the function to the event."""
    return f"{stage}_{kind}"


def emergency_messages(env_name: str, rules: str, stages: list[str], kind: str, text: str,
                       state: dict[str, Any], existing: list[Candidate]) -> list[dict[str, str]]:
    existing_block = "\n".join(f"- {c.signature()} [{c.summary}]" for c in existing) or "- (none)"
    example = ", ".join(function_name_hint(s, kind) for s in stages)
    user = f"""{EMERGENCY_TASK}
Environment: {env_name}

## Rules
{rules}

## Emergency
kind: {kind}
{text}

## State
```json
{json.dumps(state, separators=(",", ":"), sort_keys=True)}
```

## Existing functions
{existing_block}

## What to write
The rules above changed: the emergency is in force from now on. Write new functions for the stages
(in order: {", ".join(stages)}) whose decision must change because of it, so that the task can still
be achieved under the new rule; leave the other stages to the existing functions. Name each new
function `<stage>_{kind}` ({example}); do not reuse an existing name. Each is `def name(state, prev,
**kwargs)` with a docstring whose first line says what it does; `state` is a dict like the one above,
`prev` the previous stage's result (None for the first stage). Read the details of the emergency
(where, who) from `state`, never from this text: the functions are reused for every later emergency of
kind {kind}. Return plain data. Use only these imports: math, collections, heapq, itertools,
functools. Helpers must have names starting with `_`.

## Reply format
One ```python block with the new functions, then a section `## Manual` with, for each function, a
heading `### name`, a line `Stage: <stage>`, when to use it, and an example line
`Call: name(arg="value")`."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_emergency_prompt(prompt: str) -> tuple[str, str, dict[str, Any]]:
    """(kind, text, state) back from an emergency prompt (what a scripted teacher reads)."""
    if not prompt.startswith(EMERGENCY_TASK):
        raise ValueError("not an emergency prompt")
    try:
        section = prompt.split("\n## Emergency\n", 1)[1].split("\n## ", 1)[0].strip()
        kind_line, _, text = section.partition("\n")
        state_block = prompt.split("\n## State\n", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
        state = json.loads(state_block)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"emergency prompt is missing its Emergency or State section: {exc}") from None
    if not kind_line.startswith("kind: "):
        raise ValueError(f"emergency section must start with 'kind: <kind>', got {kind_line[:40]!r}")
    return kind_line[len("kind: "):].strip(), text.strip(), state

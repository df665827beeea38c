"""Knowledge-distillation baseline: the student maps (instruction, state) straight to a raw decision."""

from __future__ import annotations

import json
from typing import Any

from generation.prompts.calls import MAX_REPLY_CHARS, ParseError

ACTION_PREFIX = "Action:"


def student_action_prompt(instruction: str, state_text: str, question: str) -> str:
    """`question` is the environment's `action_question` (pursuit: "Decide the joint action.")."""
    return f"Instruction: {instruction}\nState:\n{state_text}\n{question}"


def render_action(decision: Any) -> str:
    return f"{ACTION_PREFIX} {json.dumps(decision, separators=(',', ':'), sort_keys=True)}"


def parse_action(text: str) -> Any:
    """The JSON decision after the last `Action:`; legality is the environment's call."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty reply")
    if len(text) > MAX_REPLY_CHARS:
        raise ParseError(f"reply longer than {MAX_REPLY_CHARS} characters")
    idx = text.rfind(ACTION_PREFIX)
    if idx < 0:
        raise ParseError(f"no '{ACTION_PREFIX}' in reply")
    body = text[idx + len(ACTION_PREFIX):].strip().splitlines()[0] if text[idx + len(ACTION_PREFIX):].strip() else ""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        raise ParseError(f"action is not valid JSON: {body[:80]!r}") from None

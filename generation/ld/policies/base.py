"""What a policy is: something that answers a batch of decision requests with text.

Policies only produce text; the same parsers turn any policy's text into a decision, so a
teacher, a student and a baseline are judged by exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from generation.ld.prompts import Candidate


@dataclass(frozen=True)
class SelectionRequest:
    """Choose one function for one stage of one step of one episode."""

    rules: str
    instruction: str
    state_text: str
    stage: str
    stage_input: str
    candidates: list[Candidate]


@dataclass(frozen=True)
class ActionRequest:
    """Choose the raw decision directly (knowledge-distillation baseline)."""

    instruction: str
    state_text: str
    question: str  # the environment's `action_question`


@dataclass(frozen=True)
class PolicyReply:
    text: str
    request_id: str = ""
    meta: dict = field(default_factory=dict)


class SelectionPolicy(Protocol):
    kind: str  # "select"

    def select(self, requests: list[SelectionRequest]) -> list[PolicyReply]: ...


class ActionPolicy(Protocol):
    kind: str  # "action"

    def act(self, requests: list[ActionRequest]) -> list[PolicyReply]: ...

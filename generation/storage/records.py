"""The record schemas every stage reads and writes. A record that does not match is rejected on read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionRecord(Record):
    """One teacher-written function and the verdict of its sandbox validation."""

    kind: Literal["function"] = "function"
    name: str
    stage: str
    params: list[str]
    doc: str
    manual: str
    source: str
    accepted: bool
    reasons: list[str] = []
    teacher_request_id: str


class StageDecisionRecord(Record):
    """Logic Distillation data: (instruction, state, stage input, candidates) -> selected function + args."""

    kind: Literal["stage_decision"] = "stage_decision"
    env: str
    episode_id: str
    seed: int
    step: int
    stage: str
    instruction: str
    state_text: str
    stage_input: str
    candidates: list[str]
    function: str
    arguments: str  # JSON object
    prompt: str  # the student's view of the same decision
    completion: str
    teacher_request_id: str


class RawActionRecord(Record):
    """Knowledge-distillation baseline data: (instruction, state) -> the teacher's raw joint action."""

    kind: Literal["raw_action"] = "raw_action"
    env: str
    episode_id: str
    seed: int
    step: int
    instruction: str
    state_text: str
    action: str  # JSON object
    prompt: str
    completion: str


class RejectionRecord(Record):
    """A teacher request that produced no usable reply: why, after how many asks, and what it said last."""

    kind: Literal["rejection"] = "rejection"
    request_id: str
    prompt_hash: str
    stage: str
    reason_kind: str  # parse | truncated | bad_response | teacher_error:<kind>
    reason: str
    asks: int  # the first ask plus re-asks
    last_reply: str  # cut to a few hundred characters
    model: str

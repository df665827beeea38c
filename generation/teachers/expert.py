"""The built-in expert teacher: a scripted expert that answers LLM prompts with LLM-format text.

It is the offline default. It reads only the prompt text (instruction, rendered state, stage
input, candidate list), decides with the environment's scripted expert, and replies exactly as an
LLM is asked to (a short reason, then `Call: ...`). Its replies go through the same parsers and
the same sandbox as any LLM's; nothing here hands a decision to the pipeline directly.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from generation.ld import emergency_prompts as emergency, prompts as ld
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, cost_usd

SECTION = re.compile(r"^## (.+)$", re.MULTILINE)
CANDIDATE = re.compile(r"^- ([A-Za-z_][A-Za-z0-9_]*)\(", re.MULTILINE)


def _sections(text: str) -> dict[str, str]:
    heads = list(SECTION.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return {h.group(1).strip(): text[h.end():end].strip() for h, end in zip(heads, ends)}


def _count_tokens(text: str) -> int:
    """A rough token count (~4 characters a token) so the expert's usage shows in cost tables."""
    return max(1, len(text) // 4)


class ExpertTeacher(TeacherBackend):
    """`env` parses prompt text back into data; `expert` is the env's scripted expert module."""

    def __init__(self, cfg, env, expert) -> None:
        self.cfg = cfg
        self.env = env
        self.expert = expert

    def _select_reply(self, prompt: str) -> str:
        parts = _sections(prompt)
        try:
            instruction = self.env.parse_instruction(parts["Instruction"])
            state = self.env.parse_state_text(parts["State"])
            stage_line, _, input_line = parts["Stage"].partition("\n")
            stage_input = input_line.split(":", 1)[1].strip()
            prev = None if stage_input == "none" else json.loads(stage_input)
            candidates = CANDIDATE.findall(parts["Candidate functions"])
        except (KeyError, IndexError, ValueError) as exc:
            raise TeacherError("bad_request", f"expert cannot read the selection prompt: {exc}") from None
        name, kwargs = self.expert.expert_select(stage_line.strip(), instruction, state, prev, candidates)
        call = ", ".join(f"{k}={json.dumps(v)}" for k, v in kwargs.items())
        return f"Reason: best function for this instruction and state.\nCall: {name}({call})"

    def _emergency_reply(self, prompt: str) -> str:
        if not callable(getattr(self.expert, "emergency_reply", None)):
            raise TeacherError("bad_request", "this environment's expert cannot write emergency functions")
        try:
            kind, text, state = emergency.parse_emergency_prompt(prompt)
            return self.expert.emergency_reply(kind, text, state)
        except ValueError as exc:
            raise TeacherError("bad_request", f"expert cannot read the emergency prompt: {exc}") from None

    def reply_text(self, messages: list[dict[str, str]]) -> str:
        """The reply to a chat, as text (synchronous: the expert does no I/O)."""
        # the last message that states a task: a re-ask turn repeats no task, the prompt before it does
        prompt = next((m["content"] for m in reversed(messages) if m["content"].startswith("# Task:")),
                      messages[-1]["content"])
        if prompt.startswith(ld.FUNCTION_BASE_TASK):
            return self.expert.function_base_reply()
        if prompt.startswith(ld.SELECT_TASK):
            return self._select_reply(prompt)
        if prompt.startswith(emergency.EMERGENCY_TASK):
            return self._emergency_reply(prompt)
        if callable(getattr(self.expert, "task_reply", None)):
            # a task's own expert (e.g. generation/ltr/tutor.py) answers the prompts of that task
            return self.expert.task_reply(prompt)
        raise TeacherError("bad_request", "expert teacher does not know this task (no '# Task:' header)")

    def reply_for(self, request: TeacherRequest) -> str:
        """The reply to a request; an expert that draws several samples per prompt reads request.metadata."""
        return self.reply_text(request.messages)

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        started = time.perf_counter()
        text = self.reply_for(request)
        n_in = sum(_count_tokens(m["content"]) for m in request.messages)
        n_out = _count_tokens(text)
        return TeacherReply(request_id=request.request_id, text=text, finish_reason="stop", input_tokens=n_in,
                            output_tokens=n_out, model=self.cfg.model, latency_s=time.perf_counter() - started,
                            cost_usd=cost_usd(n_in, n_out, self.cfg))

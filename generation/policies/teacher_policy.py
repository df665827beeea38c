"""A teacher backend used as a selection policy: one chat request per stage decision.

The backend is async (many requests in flight); the rollout loop is synchronous and batched,
so each batch is one `complete_many` on a private event loop that lives as long as the policy
(the openai client's connection pool is bound to the loop it first ran on).
"""

from __future__ import annotations

import asyncio
import itertools

from generation.policies.base import PolicyReply, SelectionRequest
from generation.prompts import ld


class TeacherSelectionPolicy:
    kind = "select"

    def __init__(self, backend, temperature: float, max_tokens: int, concurrency: int, tag: str = "t"):
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self._ids = itertools.count()
        self._tag = tag
        self._loop = asyncio.new_event_loop()
        self.usage = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0}

    def _request(self, req: SelectionRequest):
        from generation.teachers.base import TeacherRequest

        messages = ld.selection_messages(req.rules, req.instruction, req.state_text, req.stage,
                                         req.stage_input, req.candidates)
        return TeacherRequest(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                              request_id=f"{self._tag}-{next(self._ids)}", metadata={"stage": req.stage})

    def complete(self, requests: list) -> list:
        """Raw replies (TeacherReply or TeacherError, in order) for prepared TeacherRequests."""
        from generation.teachers.base import complete_many

        return self._loop.run_until_complete(complete_many(self.backend, requests, self.concurrency))

    def select(self, requests: list[SelectionRequest]) -> list[PolicyReply]:
        out = []
        for reply in self.complete([self._request(r) for r in requests]):
            self.usage["requests"] += 1
            if hasattr(reply, "text"):
                self.usage["input_tokens"] += reply.input_tokens
                self.usage["output_tokens"] += reply.output_tokens
                out.append(PolicyReply(reply.text, reply.request_id, {"finish_reason": reply.finish_reason}))
            else:  # a failed request after retries is an invalid decision, with its reason kept
                self.usage["errors"] += 1
                out.append(PolicyReply("", "", {"error": str(reply)}))
        return out

    def close(self) -> None:
        self._loop.run_until_complete(self.backend.aclose())
        self._loop.close()

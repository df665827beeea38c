"""The teacher as a selection policy: one chat request per stage decision, asked through the teacher service.

The service (`generation/teachers/service.py`) owns how a request is asked: limiter, cache, retries,
re-asks and rejections, accounting. This policy says what is asked (the selection prompt) and what a
usable reply is (one call to a candidate, `generation/prompts/calls.py`), and words the re-ask turn with
the call format.

Request ids are `<unit tag>-<n>` in the order the unit asks, and a re-ask keeps its request's id, so
replaying a unit (after a crash) produces the same records. Requests carry the prompt-template and
parser versions, which the response cache puts in its key.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter

from generation.ld import prompts as ld
from generation.ld.policies.base import PolicyReply, SelectionRequest
from generation.prompts.calls import parse_call
from generation.teachers.base import TeacherRequest, prompt_hash
from generation.teachers.service import Ask, TeacherService

# Bump when generation/prompts/calls.py changes what it accepts: cached verdicts depend on it.
PARSER_VERSION = "calls-v1"


def reask_message(reason_kind: str, reason: str, max_tokens: int) -> str:
    if reason_kind == "truncated":
        what = f"was cut off at the limit of {max_tokens} tokens. Answer again, much more briefly"
    else:
        what = f"could not be used ({reason}). Answer again"
    return (f"Your previous reply {what}: think in at most two short sentences, then end with exactly one "
            f"line of the form\nCall: function_name(arg=\"value\", ...)\nusing one of the candidate functions.")


class TeacherSelectionPolicy:
    kind = "select"

    def __init__(self, service: TeacherService, tag: str = "t"):
        self.service = service
        self.meter = service.meter
        self.temperature = service.cfg.temperature
        self.max_tokens = service.cfg.max_tokens
        self.begin(tag)

    def begin(self, tag: str) -> None:
        """Start a task: fresh request ids, occurrence counts and rejections; usage counted from here."""
        self._tag = tag
        self._ids = itertools.count()
        self._occurrences: Counter[str] = Counter()
        self.service.begin()

    @property
    def rejections(self) -> list:
        return self.service.rejections

    @property
    def usage(self) -> dict:
        return self.service.usage

    def _request(self, req: SelectionRequest) -> TeacherRequest:
        messages = ld.selection_messages(req.rules, req.instruction, req.state_text, req.stage,
                                         req.stage_input, req.candidates)
        meta = {"stage": req.stage, "template": ld.TEMPLATE_VERSION, "parser": PARSER_VERSION}
        if self.temperature > 0:  # repeated prompts in a unit are separate samples, replayed in order
            digest = prompt_hash(messages)
            meta["sample"] = self._occurrences[digest]
            self._occurrences[digest] += 1
        return TeacherRequest(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                              request_id=f"{self._tag}-{next(self._ids)}", metadata=meta)

    def complete(self, requests: list) -> list:
        """Raw replies (TeacherReply or TeacherError, in order) for prepared TeacherRequests."""
        return self.service.complete(requests)

    def select(self, requests: list[SelectionRequest]) -> list[PolicyReply]:
        asks = []
        for req in requests:
            signatures = {c.name: list(c.params) for c in req.candidates}
            asks.append(Ask(self._request(req), parse=functools.partial(parse_call, signatures=signatures),
                            stage=req.stage, followup=reask_message))
        out = []
        for answer in self.service.ask(asks):
            request_id = answer.ask.request.request_id
            if answer.ok:
                out.append(PolicyReply(answer.reply.text, request_id,
                                       {"finish_reason": answer.reply.finish_reason, "asks": answer.asks}))
            else:
                r = answer.rejection
                out.append(PolicyReply("", request_id, {"error": f"{r.reason_kind}: {r.reason}", "rejected": True}))
        return out

    def close(self) -> None:
        self.service.close()

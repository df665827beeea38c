"""A teacher backend used as a selection policy: one chat request per stage decision, validated.

The backend is async (many requests in flight); the rollout loop is synchronous and batched,
so each batch is one `complete_many` on a private event loop that lives as long as the policy
(the openai client's connection pool is bound to the loop it first ran on).

Every reply is checked before the rollout sees it: it must parse as one call to a candidate, and must
not have stopped at the token limit. A failing reply is re-asked (a follow-up turn saying what was
wrong; a garbled HTTP body is simply asked again) up to `max_reasks` times, all failing requests of a
batch together; then it becomes a RejectionRecord with its reason. Nothing is dropped silently.

Request ids are `<task tag>-<n>` in the order the task asks, and a re-ask keeps its request's id, so
replaying a task (after a crash) produces the same records. Requests carry the prompt-template and
parser versions, which the response cache puts in its key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter

from generation.ld.policies.base import PolicyReply, SelectionRequest
from generation.ld import prompts as ld
from generation.prompts.calls import ParseError, parse_call
from generation.storage.records import RejectionRecord
from generation.teachers.accounting import UsageMeter, usage_delta
from generation.teachers.base import TeacherRequest, complete_many, prompt_hash

# Bump when generation/prompts/calls.py changes what it accepts: cached verdicts depend on it.
PARSER_VERSION = "calls-v1"
REASK_VERSION = "reask-v1"
LAST_REPLY_CHARS = 400
REASK_ERROR_KINDS = frozenset({"bad_response"})  # 2xx bodies that were not a chat completion


def reask_message(reason_kind: str, reason: str, max_tokens: int) -> str:
    if reason_kind == "truncated":
        what = f"was cut off at the limit of {max_tokens} tokens. Answer again, much more briefly"
    else:
        what = f"could not be used ({reason}). Answer again"
    return (f"Your previous reply {what}: think in at most two short sentences, then end with exactly one "
            f"line of the form\nCall: function_name(arg=\"value\", ...)\nusing one of the candidate functions.")


class TeacherSelectionPolicy:
    kind = "select"

    def __init__(self, backend, temperature: float, max_tokens: int, concurrency: int, tag: str = "t",
                 max_reasks: int = 0, meter: UsageMeter | None = None):
        self.backend = backend
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.max_reasks = max_reasks
        self.meter = meter or getattr(backend, "meter", None) or UsageMeter()
        self._loop = asyncio.new_event_loop()
        self.begin(tag)

    def begin(self, tag: str) -> None:
        """Start a task: fresh request ids, occurrence counts and rejections; usage counted from here."""
        self._tag = tag
        self._ids = itertools.count()
        self._occurrences: Counter[str] = Counter()
        self.rejections: list = []
        self._start = self.meter.snapshot()

    @property
    def usage(self) -> dict:
        """Usage since `begin`: `requests` = billed replies (not cache hits), `errors` = failed requests,
        `asked` = all requests, `attempt_errors` = failed HTTP attempts by kind (retried or not)."""
        delta = usage_delta(self.meter.snapshot(), self._start)
        billed = delta["requests"] - delta["cache_hits"] - delta["failures"]
        return {**delta, "requests": billed, "asked": delta["requests"], "errors": delta["failures"],
                "attempt_errors": delta["errors"]}

    def _request(self, req: SelectionRequest) -> TeacherRequest:
        messages = ld.selection_messages(req.rules, req.instruction, req.state_text, req.stage,
                                         req.stage_input, req.candidates)
        meta = {"stage": req.stage, "template": ld.TEMPLATE_VERSION, "parser": PARSER_VERSION}
        if self.temperature > 0:  # repeated prompts in a task are separate samples, replayed in order
            digest = prompt_hash(messages)
            meta["sample"] = self._occurrences[digest]
            self._occurrences[digest] += 1
        return TeacherRequest(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                              request_id=f"{self._tag}-{next(self._ids)}", metadata=meta)

    def complete(self, requests: list) -> list:
        """Raw replies (TeacherReply or TeacherError, in order) for prepared TeacherRequests."""
        return self._loop.run_until_complete(complete_many(self.backend, requests, self.concurrency))

    def _verdict(self, reply, signatures: dict[str, list[str]]) -> tuple[str, str] | None:
        """None for a usable reply, else (reason kind, reason)."""
        if not hasattr(reply, "text"):
            kind = reply.kind if reply.kind in REASK_ERROR_KINDS else f"teacher_error:{reply.kind}"
            return kind, reply.message
        if reply.truncated:
            return "truncated", f"stopped at max_tokens ({reply.output_tokens} tokens)"
        try:
            parse_call(reply.text, signatures)
        except ParseError as exc:
            return "parse", str(exc)
        return None

    def _reask(self, request, reply, reason_kind: str, reason: str):
        if not hasattr(reply, "text"):  # nothing came back to show: ask the same again
            return request
        turn = [{"role": "assistant", "content": reply.text},
                {"role": "user", "content": reask_message(reason_kind, reason, request.max_tokens or self.max_tokens)}]
        meta = {**request.metadata, "template": f"{request.metadata.get('template')}+{REASK_VERSION}"}
        return dataclasses.replace(request, messages=request.messages + turn, metadata=meta)

    def _reject(self, request, reply, reason_kind: str, reason: str, asks: int) -> PolicyReply:
        self.meter.rejection(reason_kind)
        first_ask = request.messages[:2]  # system + the selection prompt, without re-ask turns
        self.rejections.append(RejectionRecord(
            request_id=request.request_id, prompt_hash=prompt_hash(first_ask), stage=request.metadata.get("stage", ""),
            reason_kind=reason_kind, reason=reason[:LAST_REPLY_CHARS], asks=asks,
            last_reply=getattr(reply, "text", "")[:LAST_REPLY_CHARS], model=getattr(reply, "model", "")))
        return PolicyReply("", request.request_id, {"error": f"{reason_kind}: {reason}", "rejected": True})

    def select(self, requests: list[SelectionRequest]) -> list[PolicyReply]:
        asks = [self._request(r) for r in requests]
        signatures = [{c.name: list(c.params) for c in r.candidates} for r in requests]
        out: list[PolicyReply | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        for round_no in range(self.max_reasks + 1):
            replies = self.complete([asks[i] for i in pending])
            still = []
            for i, reply in zip(pending, replies):
                verdict = self._verdict(reply, signatures[i])
                if verdict is None:
                    out[i] = PolicyReply(reply.text, asks[i].request_id,
                                         {"finish_reason": reply.finish_reason, "asks": round_no + 1})
                elif verdict[0].startswith("teacher_error") or round_no == self.max_reasks:
                    out[i] = self._reject(asks[i], reply, *verdict, asks=round_no + 1)
                else:
                    self.meter.reask()
                    asks[i] = self._reask(asks[i], reply, *verdict)
                    still.append(i)
            pending = still
            if not pending:
                break
        return out

    def close(self) -> None:
        self._loop.run_until_complete(self.backend.aclose())
        self._loop.close()

"""The one teacher service every method calls: a method says *what* it asks and how to read the reply;
the service owns *how* it is asked.

    service = TeacherService(cfg.teacher, hooks, max_reasks=2, env=env, expert=expert)
    answers = service.ask([Ask(request, parse=parse_rationales_of_3, stage="ltr_feedback"), ...])
    rows = [a.value for a in answers if a.ok]; rejections = service.rejections

Under it every request goes through the same stack (`generation/teachers/stack.py`): the cluster-wide
rate limiter and the response cache reached through `hooks` (made once per job by
`ray_jobs/teacher_services.py`), the backend's own retries, and the usage meter that feeds the live
display and the cost table. One concurrency setting, `teacher.concurrency`, bounds requests in flight
per process.

A reply is checked before the method sees it: it must not have stopped at the token limit and `parse`
must accept it. A failing reply is re-asked (a follow-up turn saying what was wrong; a garbled HTTP body
is simply asked again) up to `max_reasks` times, all failing asks of a batch together; then it becomes a
RejectionRecord with its reason and the number of asks. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from configs.teacher_schema import TeacherConfig
from generation.prompts.calls import ParseError
from generation.storage.records import RejectionRecord
from generation.teachers.accounting import usage_delta
from generation.teachers.base import TeacherError, TeacherReply, TeacherRequest, complete_many, prompt_hash

REASK_VERSION = "reask-v1"
LAST_REPLY_CHARS = 400
REASK_ERROR_KINDS = frozenset({"bad_response"})  # 2xx bodies that were not a chat completion: ask again


def generic_followup(reason_kind: str, reason: str, max_tokens: int) -> str:
    """The follow-up turn after an unusable reply, for methods without a format reminder of their own."""
    if reason_kind == "truncated":
        return f"Your previous reply was cut off at the limit of {max_tokens} tokens. Answer again, much more briefly."
    return f"Your previous reply could not be used ({reason}). Answer again, exactly in the format asked for."


@dataclass(frozen=True)
class Ask:
    """One question a method puts to the teacher.

    `parse(reply_text)` returns what the method keeps, or raises ParseError/ValueError naming the problem.
    `followup(reason_kind, reason, max_tokens)` words the re-ask turn (default: `generic_followup`).
    """

    request: TeacherRequest
    parse: Callable[[str], Any] = lambda text: text
    stage: str = ""
    followup: Callable[[str, str, int], str] = generic_followup


@dataclass
class Answer:
    """What came of one Ask: the parsed value, or the rejection that says why there is none."""

    ask: Ask
    reply: TeacherReply | None
    value: Any = None
    rejection: RejectionRecord | None = None
    asks: int = 1

    @property
    def ok(self) -> bool:
        return self.rejection is None


class TeacherService:
    """The configured teacher with the job's shared limiter, cache and meter, used synchronously.

    The backend is async; callers here are synchronous and batched, so each batch runs on a private event
    loop that lives as long as the service (the openai client's connection pool is bound to its loop).
    `context` is what the built-in expert teacher needs to answer offline (which expert, which task).
    `backend` replaces the configured one (tests script replies with it); it is metered like any other.
    """

    def __init__(self, cfg: TeacherConfig, hooks: Any = None, *, max_reasks: int = 0, backend: Any = None,
                 **context: Any):
        from generation.teachers.accounting import UsageMeter
        from generation.teachers.stack import CachedTeacher, build_teacher_stack, connect_hooks

        self.cfg = cfg
        self.max_reasks = max_reasks
        if backend is None:
            self.backend = build_teacher_stack(cfg, **connect_hooks(hooks), **context)
        else:
            self.backend = backend if isinstance(backend, CachedTeacher) else CachedTeacher(backend, cfg, UsageMeter())
        self.meter = self.backend.meter
        self._loop = asyncio.new_event_loop()
        self.begin()

    def begin(self) -> None:
        """Start a unit of work: its rejections and usage are counted from here."""
        self.rejections: list[RejectionRecord] = []
        self._start = self.meter.snapshot()

    @property
    def usage(self) -> dict[str, Any]:
        """Usage since `begin`: `requests` = billed replies (not cache hits), `errors` = failed requests,
        `asked` = all requests, `attempt_errors` = failed HTTP attempts by kind (retried or not)."""
        delta = usage_delta(self.meter.snapshot(), self._start)
        billed = delta["requests"] - delta["cache_hits"] - delta["failures"]
        return {**delta, "requests": billed, "asked": delta["requests"], "errors": delta["failures"],
                "attempt_errors": delta["errors"]}

    def complete(self, requests: list[TeacherRequest]) -> list[TeacherReply | TeacherError]:
        """Raw replies (TeacherReply or TeacherError, in order): no parsing, no re-asks."""
        return self._loop.run_until_complete(complete_many(self.backend, requests, self.cfg.concurrency))

    def ask(self, asks: list[Ask]) -> list[Answer]:
        """Every ask answered (value) or rejected (reason), in order, re-asking what failed its check."""
        requests = [a.request for a in asks]
        out: list[Answer | None] = [None] * len(asks)
        pending = list(range(len(asks)))
        for round_no in range(self.max_reasks + 1):
            replies = self.complete([requests[i] for i in pending])
            still = []
            for i, reply in zip(pending, replies):
                value, verdict = self._check(asks[i], reply)
                if verdict is None:
                    out[i] = Answer(asks[i], reply, value, asks=round_no + 1)
                elif verdict[0].startswith("teacher_error") or round_no == self.max_reasks:
                    out[i] = self._reject(asks[i], requests[i], reply, *verdict, asks=round_no + 1)
                else:
                    self.meter.reask()
                    requests[i] = self._reask(asks[i], requests[i], reply, *verdict)
                    still.append(i)
            pending = still
            if not pending:
                break
        return out  # type: ignore[return-value]

    @staticmethod
    def _check(ask: Ask, reply: TeacherReply | TeacherError) -> tuple[Any, tuple[str, str] | None]:
        """(parsed value, None) for a usable reply, else (None, (reason kind, reason))."""
        if isinstance(reply, TeacherError):
            kind = reply.kind if reply.kind in REASK_ERROR_KINDS else f"teacher_error:{reply.kind}"
            return None, (kind, reply.message)
        if reply.truncated:
            return None, ("truncated", f"stopped at max_tokens ({reply.output_tokens} tokens)")
        try:
            return ask.parse(reply.text), None
        except (ParseError, ValueError) as exc:
            return None, ("parse", str(exc))

    def _reask(self, ask: Ask, request: TeacherRequest, reply: TeacherReply | TeacherError, reason_kind: str,
               reason: str) -> TeacherRequest:
        if isinstance(reply, TeacherError):  # nothing came back to show: ask the same again
            return request
        words = ask.followup(reason_kind, reason, request.max_tokens or self.cfg.max_tokens)
        turn = [{"role": "assistant", "content": reply.text}, {"role": "user", "content": words}]
        meta = {**request.metadata, "template": f"{request.metadata.get('template')}+{REASK_VERSION}"}
        return dataclasses.replace(request, messages=request.messages + turn, metadata=meta)

    def _reject(self, ask: Ask, request: TeacherRequest, reply: TeacherReply | TeacherError, reason_kind: str,
                reason: str, asks: int) -> Answer:
        self.meter.rejection(reason_kind)
        first_ask = ask.request.messages  # the prompt as first asked, without re-ask turns
        rejection = RejectionRecord(
            request_id=request.request_id, prompt_hash=prompt_hash(first_ask), stage=ask.stage,
            reason_kind=reason_kind, reason=reason[:LAST_REPLY_CHARS], asks=asks,
            last_reply=getattr(reply, "text", "")[:LAST_REPLY_CHARS], model=getattr(reply, "model", ""))
        self.rejections.append(rejection)
        return Answer(ask, reply if isinstance(reply, TeacherReply) else None, None, rejection, asks)

    def close(self) -> None:
        self._loop.run_until_complete(self.backend.aclose())
        self._loop.close()

    def __enter__(self) -> TeacherService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

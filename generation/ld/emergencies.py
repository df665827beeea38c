"""Run-time function addition: when an env announces an emergency, the teacher writes functions for it.

The teacher is asked through the backend interface (the emergency prompt, `generation/prompts/
emergency.py`), so an LLM or the expert teacher can answer. The reply goes through the function-base
parser and the same sandbox validation; accepted functions join the function base (scoped to the
emergency's kind), the worker's sandbox and the retrieval index at once, and the episode goes on. A
rejected reply (hostile code, a failed request) adds nothing; the episode goes on with the base.

The teacher is asked once per emergency kind per responder: the functions read the details from the
state, so they serve every later emergency of that kind (a responder lives for one policy's run).
"""

from __future__ import annotations

from typing import Any, Callable

from generation.ld.envs.base import Emergency
from generation.ld.functions.function_base import FunctionBase
from generation.ld.functions.retriever import FunctionRetriever
from generation.ld.functions.runtime import build_runtime_functions, stage_samples
from generation.ld.emergency_prompts import emergency_messages
from generation.storage.records import FunctionRecord

MAX_VALIDATION_STATES = 3


class EmergencyResponder:
    """`make_teacher()` returns an object with `complete(list[TeacherRequest]) -> list[reply or error]`
    (e.g. `TeacherSelectionPolicy`); it is built the first time an emergency needs it."""

    def __init__(self, make_teacher: Callable[[], Any], limits: Any, max_tokens: int = 4096,
                 close_teacher: bool = True):
        self._make_teacher = make_teacher
        self._teacher: Any = None
        self._close_teacher = close_teacher
        self.limits = limits
        self.max_tokens = max_tokens
        self.functions_by_kind: dict[str, list[str]] = {}
        self.records: list[FunctionRecord] = []
        self.usage = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0, "accepted": 0,
                      "rejected": 0}

    def _request(self, env: Any, emergency: Emergency, base: FunctionBase, request_id: str):
        from generation.teachers.base import TeacherRequest

        existing = [f.candidate() for f in base.functions.values() if not f.scope]
        messages = emergency_messages(env.name, env.rules_text(), env.stages, emergency.kind, emergency.text,
                                      env.state(), existing)
        return TeacherRequest(messages=messages, max_tokens=self.max_tokens, request_id=request_id,
                              metadata={"emergency": emergency.kind})

    def answer(self, announced: list[tuple[Any, Emergency]], base: FunctionBase, sandbox: Any,
               retriever: FunctionRetriever) -> dict[str, list[str]]:
        """Functions (names) available for each announced emergency's kind, asking the teacher for new kinds.

        `announced` pairs each env (in the state the emergency appeared in) with its emergency.
        """
        fresh: dict[str, list[tuple[Any, Emergency]]] = {}
        for env, emergency in announced:
            if emergency.kind not in self.functions_by_kind:
                fresh.setdefault(emergency.kind, []).append((env, emergency))
        if fresh:
            self._ask(fresh, base, sandbox, retriever)
        return {e.kind: list(self.functions_by_kind.get(e.kind, [])) for _, e in announced}

    def _ask(self, fresh: dict[str, list[tuple[Any, Emergency]]], base: FunctionBase, sandbox: Any,
             retriever: FunctionRetriever) -> None:
        if self._teacher is None:
            self._teacher = self._make_teacher()
        kinds = sorted(fresh)
        requests = [self._request(*fresh[k][0], base, f"emergency-{k}-{self.usage['requests'] + i}")
                    for i, k in enumerate(kinds)]
        replies = self._teacher.complete(requests)
        self.usage["requests"] += len(requests)
        for kind, request, reply in zip(kinds, requests, replies):
            self.functions_by_kind[kind] = []
            if not hasattr(reply, "text"):  # the request failed after retries: nothing joins
                self.usage["errors"] += 1
                self.records.append(FunctionRecord(name="<no reply>", stage="", params=[], doc="", manual="",
                                                   source="", accepted=False, reasons=[str(reply)],
                                                   teacher_request_id=request.request_id))
                continue
            self.usage["input_tokens"] += reply.input_tokens
            self.usage["output_tokens"] += reply.output_tokens
            self._join(kind, reply.text, request.request_id, fresh[kind], base, sandbox, retriever)

    def _join(self, kind: str, text: str, request_id: str, announced: list[tuple[Any, Emergency]],
              base: FunctionBase, sandbox: Any, retriever: FunctionRetriever) -> None:
        env = announced[0][0]
        states = [e.state() for e, _ in announced[:MAX_VALIDATION_STATES]]
        samples = stage_samples(base, sandbox, states, env.stages)
        accepted, records = build_runtime_functions(text, env.stages, samples, self.limits, env.check_stage_output,
                                                    request_id, scope=kind, taken=set(base.functions))
        for fn in accepted:
            try:
                sandbox.load({fn.name: fn.source})
            except Exception as exc:  # noqa: BLE001 - validated, yet the live sandbox refused it: keep it out
                records = [r.model_copy(update={"accepted": False, "reasons": [f"sandbox load: {exc}"]})
                           if r.name == fn.name else r for r in records]
                continue
            base.add(fn)
            retriever.add([fn.indexed()])
            self.functions_by_kind[kind].append(fn.name)
        self.records += records
        self.usage["accepted"] += sum(r.accepted for r in records)
        self.usage["rejected"] += sum(not r.accepted for r in records)

    def close(self) -> None:
        if self._teacher is not None and self._close_teacher and hasattr(self._teacher, "close"):
            self._teacher.close()
        self._teacher = None

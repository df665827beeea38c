"""What Divide-or-Conquer asks the teacher and how it reads the replies (no Ray, no HTTP): the parsers the
service checks replies with, and what becomes of an unreadable decomposition or solution.

Run: .venv/bin/pytest tests/test_doc_asks.py
"""

from __future__ import annotations

import pytest

from configs.teacher_schema import TeacherConfig
from generation.doc import prompts as doc
from generation.doc.asks import DECOMPOSE_STAGE, decomposition_ask, solving_ask
from generation.doc.domains import get_domain
from generation.doc.samples import collect_samples
from generation.prompts.calls import ParseError
from generation.teachers.base import TeacherBackend, TeacherReply, TeacherRequest
from generation.teachers.service import TeacherService


def test_the_decomposition_parse_accepts_sub_questions_and_no_decomposition():
    parse = decomposition_ask("Q?", 2, "r").parse
    assert parse("Sub-question 1: Who founded X?\n2. Who is the mentor of #1?") == [
        "Who founded X?", "Who is the mentor of #1?"]
    assert parse("No decomposition.") == []  # a legitimate answer of the method, not a failure
    for bad, why in (("", "empty"), ("I think it is easy.", "no numbered sub-question"),
                     ("1: a\n3: b", "numbered"), ("1: a\n2: b\n3: c", "at most 2")):
        with pytest.raises(ParseError, match=why):
            parse(bad)


def test_the_solving_parse_wants_a_final_answer():
    parse = solving_ask("Q?", ["a"], "r").parse
    assert parse("Answer 1: 3\nFinal answer: 42") == "42"
    for bad in ("Answer 1: 3", "Final answer:", ""):
        with pytest.raises(ParseError):
            parse(bad)


def test_requests_carry_what_the_cache_keys_on():
    ask = decomposition_ask("Q?", 4, "u-decompose-1", temperature=0.7, sample=1)
    assert ask.stage == DECOMPOSE_STAGE and ask.request.temperature == 0.7
    assert ask.request.metadata == {"template": "doc-decompose", "parser": "doc-parse-v1", "sample": 1}
    assert "sample" not in solving_ask("Q?", [], "u-solve").request.metadata  # equal solves share one answer


class ByPrompt(TeacherBackend):
    """Replies chosen by a function of the request; every request it saw is kept."""

    def __init__(self, reply):
        self.reply, self.asked = reply, []

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        self.asked.append(request)
        return TeacherReply(request_id=request.request_id, text=self.reply(request), finish_reason="stop",
                            input_tokens=5, output_tokens=3, model="m", latency_s=0.0)


def test_an_unreadable_decomposition_is_reasked_then_kept_as_an_unparsed_sample():
    [item] = get_domain("kbqa").make_items(1, 3, {"min_hops": 2, "max_hops": 2})

    def reply(request: TeacherRequest) -> str:
        first = request.messages[0]["content"]
        if first.startswith(doc.SOLVE_TASK):
            return f"Final answer: {item.answer}"
        return "No decomposition." if request.metadata.get("sample") == 0 else "Let me think about it."

    backend = ByPrompt(reply)
    with TeacherService(TeacherConfig(), backend=backend, max_reasks=1) as service:
        no_split, unreadable = collect_samples([item], 2, 0.7, 4, service)
        [rejection] = service.rejections
    assert no_split.parsed and no_split.sub_questions == [] and no_split.solved
    assert not unreadable.parsed and unreadable.parse_error.startswith("parse: no numbered sub-question")
    assert not unreadable.solved and unreadable.decomposition == "Let me think about it."
    assert (rejection.stage, rejection.reason_kind, rejection.asks) == (DECOMPOSE_STAGE, "parse", 2)
    reask = [r for r in backend.asked if len(r.messages) > 1]
    assert len(reask) == 1 and doc.NO_DECOMPOSITION in reask[0].messages[-1]["content"]
    assert unreadable.teacher_input_tokens == 5  # usage of the last ask
    # only the readable decomposition was solved: 2 decompositions + 1 re-ask + 1 solve
    assert len(backend.asked) == 4

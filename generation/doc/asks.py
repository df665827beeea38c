"""What Divide-or-Conquer asks the teacher, and what a usable reply is.

The teacher service (generation/teachers/service.py) owns *how* a request is asked: limiter, cache,
re-asks, rejections, accounting. This module says *what*: the decomposition and solving requests,
the parsers the service checks replies with, and the format reminder of a re-ask.

"No decomposition." is a usable reply (it parses to no sub-questions): the method allows it. A reply
with no numbered sub-question and no such line, numbering out of order or too many sub-questions is
not, and neither is a solution without its `Final answer:` line.
"""

from __future__ import annotations

import functools

from generation.doc import prompts as doc
from generation.teachers.base import TeacherRequest
from generation.teachers.service import Ask

DECOMPOSE_STAGE = "doc_decompose"
SOLVE_STAGE = "doc_solve"
# Bump when prompts.parse_decomposition / parse_solution change what they accept: re-asks depend on it.
PARSER_VERSION = "doc-parse-v1"


def decomposition_followup(reason_kind: str, reason: str, max_tokens: int) -> str:
    what = (f"was cut off at the limit of {max_tokens} tokens" if reason_kind == "truncated"
            else f"could not be read ({reason})")
    return (f"Your previous reply {what}. Reply again with one line per sub-question, "
            f"\"{doc.SUB_PREFIX} 1: ...\", and nothing else; or exactly \"{doc.NO_DECOMPOSITION}\"")


def solving_followup(reason_kind: str, reason: str, max_tokens: int) -> str:
    what = (f"was cut off at the limit of {max_tokens} tokens; answer more briefly" if reason_kind == "truncated"
            else f"could not be read ({reason})")
    return f"Your previous reply {what}. End with one line \"{doc.FINAL_MARKER} <answer>\" holding only the answer."


def parse_final_answer(text: str) -> str:
    """The final answer of a solver's reply (ParseError when it has none)."""
    return doc.parse_solution(text).final_answer


def decomposition_ask(question: str, max_sub_questions: int, request_id: str, temperature: float | None = None,
                      sample: int | None = None) -> Ask:
    """Ask for one decomposition; `sample` numbers the draws of one prompt (each is cached apart)."""
    meta = {"template": "doc-decompose", "parser": PARSER_VERSION}
    if sample is not None:
        meta["sample"] = sample
    request = TeacherRequest(doc.decomposition_messages(question, max_sub_questions), request_id=request_id,
                             temperature=temperature, metadata=meta)
    return Ask(request, parse=functools.partial(doc.parse_decomposition, max_sub_questions=max_sub_questions),
               stage=DECOMPOSE_STAGE, followup=decomposition_followup)


def solving_ask(question: str, sub_questions: list[str], request_id: str) -> Ask:
    """Ask the teacher to solve `question` guided by `sub_questions` (none: single stage)."""
    request = TeacherRequest(doc.solving_messages(question, sub_questions), request_id=request_id,
                             metadata={"template": "doc-solve", "parser": PARSER_VERSION})
    return Ask(request, parse=parse_final_answer, stage=SOLVE_STAGE, followup=solving_followup)

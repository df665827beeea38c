"""The expert teacher's Learn-to-Reason feedback on the built-in arithmetic word problems.

It reads the feedback prompt back (`generation.prompts.ltr`), solves the question from its text
(`parse_facts`), locates the first step the student's rationale gets wrong, and writes correct
rationales that spell out that step: the fact the step rests on is restated before its computation
("Ben has 5 more marbles than Ava, so Ben has 12 + 5 = 17 marbles."). Plain (untailored) requests get
the gold rationale and a fully spelled-out one. Replies go through the same parser as an LLM's.
"""

from __future__ import annotations

import re

from generation.prompts.ltr import ANSWER_PHRASE, read_feedback_prompt, render_rationales
from generation.tasks import arithmetic
from generation.tasks.answers import numbers_match, parse_number
from generation.teachers.base import TeacherError

CLAIM = re.compile(r"([A-Z][a-z]+) has ([^=.]+?) = (-?\d+) \w+")


def solve_steps(question: str) -> tuple[list[arithmetic.Step], list[arithmetic.Fact], str]:
    """(the gold steps, the fact behind each step, the item) of a question, from its text alone.

    Steps come in dependency order (each quantity after those it uses), as the generator writes them.
    """
    facts, target, item = arithmetic.parse_facts(question)
    by_person = {f.person: f for f in facts}
    values: dict[str, int] = {}
    steps: list[arithmetic.Step] = []
    used: list[arithmetic.Fact] = []

    def visit(person: str, seen: frozenset) -> None:
        if person in values:
            return
        fact = by_person.get(person)
        if fact is None or person in seen:
            raise ValueError(f"the count of {person} is not determined by the question")
        for ref in fact.refs:
            visit(ref, seen | {person})
        if fact.kind == "base":
            values[person] = fact.number
            return
        steps.append(arithmetic._step(fact, values, item))  # the generator's own sentence for a step
        used.append(fact)
        values[person] = steps[-1].value

    visit(target, frozenset())
    return steps, used, item


def first_wrong_step(steps: list[arithmetic.Step], rationale: str) -> int:
    """Index of the first gold step the rationale misses or gets wrong (its value or its expression);
    the last step when every step is right but the stated answer is not."""
    claims: dict[str, tuple[str, int]] = {}
    for person, expression, value in CLAIM.findall(rationale):
        claims.setdefault(person, (" ".join(expression.split()), int(value)))
    for i, step in enumerate(steps):
        if claims.get(step.person) != (step.expression, step.value):
            return i
    return len(steps) - 1


def explained(step: arithmetic.Step, fact: arithmetic.Fact, item: str) -> str:
    """The step with the fact it rests on restated first."""
    return f"{arithmetic.fact_sentence(fact, item)[:-1]}, so {step.sentence}"


def write_rationale(steps, facts, item, answer: int, spelled_out: set[int]) -> str:
    sentences = [explained(s, f, item) if i in spelled_out else s.sentence
                 for i, (s, f) in enumerate(zip(steps, facts))]
    return " ".join(sentences) + f" {ANSWER_PHRASE} {answer}."


def tailored_rationales(steps, facts, item, wrong: str, n: int) -> list[str]:
    """n correct rationales that spell out the first wrong step (then, in turn, every later step too)."""
    first = first_wrong_step(steps, wrong)
    variants = [{first}, set(range(first, len(steps))), set(range(len(steps)))]
    answer = steps[-1].value
    return [write_rationale(steps, facts, item, answer, variants[i % len(variants)]) for i in range(n)]


def plain_rationales(steps, facts, item, n: int) -> list[str]:
    """n correct rationales written without seeing the student: the gold one, then a spelled-out one."""
    variants = [set(), set(range(len(steps)))]
    return [write_rationale(steps, facts, item, steps[-1].value, variants[i % len(variants)]) for i in range(n)]


def task_reply(prompt: str) -> str:
    """The expert's reply to a Learn-to-Reason feedback prompt (the hook `ExpertTeacher` calls)."""
    try:
        request = read_feedback_prompt(prompt)
        steps, facts, item = solve_steps(request.question)
    except ValueError as exc:
        raise TeacherError("bad_request", f"the expert teacher answers feedback on the built-in arithmetic "
                           f"problems only: {exc}") from None
    if not steps or not numbers_match(parse_number(request.gold_answer), steps[-1].value):
        raise TeacherError("bad_request", f"gold answer {request.gold_answer!r} disagrees with the expert's "
                           f"solution {steps[-1].value if steps else None}")
    if request.wrong_rationale is None:
        return render_rationales(plain_rationales(steps, facts, item, request.count))
    return render_rationales(tailored_rationales(steps, facts, item, request.wrong_rationale, request.count))

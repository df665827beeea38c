"""The expert teacher's Learn-to-Reason feedback on the built-in arithmetic word problems.

It reads the feedback prompt back (`generation.ltr.prompts`), solves the question from its text
(`parse_facts`), locates the first step the student's rationale gets wrong, and writes correct
rationales that spell out that step: the fact the step rests on is restated before its computation
("Ben has 5 more marbles than Ava, so Ben has 12 + 5 = 17 marbles."), in a second variant also the
counts it uses ("Ava has 12 marbles."). Plain (untailored) requests get the gold rationale, then
every step spelled out. Replies go through the same parser as an LLM's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.ltr.prompts import ANSWER_PHRASE, read_feedback_prompt, render_rationales
from generation.datasets import arithmetic
from generation.datasets.answers import numbers_match, parse_number
from generation.teachers.base import TeacherError

CLAIM = re.compile(r"([A-Z][a-z]+) has ([^=.]+?) = (-?\d+) \w+")
OPERATORS = {"more": "+", "fewer": "-", "times": "*", "half": "/", "sum": "+"}


def gold_step(fact: arithmetic.Fact, values: dict[str, int], item: str) -> arithmetic.Step:
    """The step that derives `fact`'s quantity from known `values`, written as the generator's
    rationales write it ("Ben has 12 + 5 = 17 marbles.", a test checks they agree)."""
    refs = [values[r] for r in fact.refs]
    value = arithmetic.apply_fact(fact, refs)
    right = {"half": 2, "sum": refs[-1]}.get(fact.kind, fact.number)
    expression = f"{refs[0]} {OPERATORS[fact.kind]} {right}"
    sentence = f"{fact.person} has {expression} = {value} {item}."
    return arithmetic.Step(person=fact.person, question=arithmetic.question_sentence(fact.person, item),
                           expression=expression, value=value, sentence=sentence, depends_on=fact.refs)


@dataclass(frozen=True)
class Solution:
    steps: list[arithmetic.Step]  # in dependency order (each quantity after those it uses), as generated
    facts: list[arithmetic.Fact]  # the fact behind each step
    values: dict[str, int]  # every quantity the steps use or derive
    item: str

    @property
    def answer(self) -> int:
        return self.steps[-1].value


def solve_steps(question: str) -> Solution:
    """The gold steps of a question, from its text alone."""
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
        steps.append(gold_step(fact, values, item))
        used.append(fact)
        values[person] = steps[-1].value

    visit(target, frozenset())
    return Solution(steps, used, values, item)


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


def recalled(solution: Solution, index: int) -> list[str]:
    """The counts step `index` uses, each as a sentence ("Ava has 12 marbles.")."""
    return [f"{ref} has {solution.values[ref]} {solution.item}." for ref in solution.facts[index].refs]


def explained(solution: Solution, index: int) -> str:
    """Step `index` with the fact it rests on restated first
    ("Ben has 5 more marbles than Ava, so Ben has 12 + 5 = 17 marbles.")."""
    fact, step = solution.facts[index], solution.steps[index]
    return f"{arithmetic.fact_sentence(fact, solution.item)[:-1]}, so {step.sentence}"


def write_rationale(solution: Solution, recall: set[int] = frozenset(), explain: set[int] = frozenset()) -> str:
    """The gold steps in order; before each step in `recall` the counts it uses, and the steps in
    `explain` with their fact restated."""
    sentences = []
    for i, step in enumerate(solution.steps):
        sentences += recalled(solution, i) if i in recall else []
        sentences.append(explained(solution, i) if i in explain else step.sentence)
    return " ".join(sentences) + f" {ANSWER_PHRASE} {solution.answer}."


def tailored_rationales(solution: Solution, wrong: str, n: int) -> list[str]:
    """n correct rationales aimed at the first step the student got wrong: the steps before it as they
    were, that step and every later one explained; then also with the counts each uses recalled; then
    the gold one (then repeating). Whole-rationale styles the student met in the warm-up's plain ones."""
    first = first_wrong_step(solution.steps, wrong)
    rest = set(range(first, len(solution.steps)))
    variants = [(set(), rest), (rest, rest), (set(), set())]
    return [write_rationale(solution, *variants[i % len(variants)]) for i in range(n)]


def plain_rationales(solution: Solution, n: int) -> list[str]:
    """n correct rationales written without seeing the student: the gold one, then every step explained,
    then every step explained and recalled (then repeating)."""
    every = set(range(len(solution.steps)))
    variants = [(set(), set()), (set(), every), (every, every)]
    return [write_rationale(solution, *variants[i % len(variants)]) for i in range(n)]


def task_reply(prompt: str) -> str:
    """The expert's reply to a Learn-to-Reason feedback prompt (the hook `ExpertTeacher` calls)."""
    try:
        request = read_feedback_prompt(prompt)
        solution = solve_steps(request.question)
    except ValueError as exc:
        raise TeacherError("bad_request", f"the expert teacher answers feedback on the built-in arithmetic "
                           f"problems only: {exc}") from None
    answer = solution.answer if solution.steps else None
    if answer is None or not numbers_match(parse_number(request.gold_answer), answer):
        raise TeacherError("bad_request", f"gold answer {request.gold_answer!r} disagrees with the expert's "
                           f"solution {answer}")
    if request.wrong_rationale is None:
        return render_rationales(plain_rationales(solution, request.count))
    return render_rationales(tailored_rationales(solution, request.wrong_rationale, request.count))

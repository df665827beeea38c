"""Teacher samples for the students, and the rows each student trains on.

For every training question the teacher draws `k` decompositions; each is solved by the teacher
solver and checked against the gold answer. From those records:
- SD-T trains on every parsed decomposition; SD-R only on those with which the solver reached the
  gold answer (rejection sampling, Wu et al. 2024);
- SE-T trains on the teacher's solution (given the teacher's first decomposition), SE-A on the same
  solution with the gold answer substituted in its final-answer line.
"""

from __future__ import annotations

from typing import Callable, Sequence

from generation.doc.domains import DocItem, get_domain
from generation.doc import prompts as doc
from generation.prompts.calls import ParseError
from generation.storage.records import Record
from generation.teachers.base import TeacherReply, TeacherRequest

TeacherCall = Callable[[list[TeacherRequest]], list]  # requests -> TeacherReply | TeacherError, in order


class DecompositionSample(Record):
    """One sampled teacher decomposition of a training question and what the teacher solver made of it."""

    uid: str
    domain: str
    question: str
    answer: str
    sample: int
    decomposition: str  # the teacher's reply as written
    sub_questions: list[str]
    parsed: bool
    parse_error: str = ""
    solution: str = ""
    predicted: str = ""
    score: float = 0.0
    solved: bool = False  # the solver reached the gold answer (exact)
    teacher_input_tokens: int = 0
    teacher_output_tokens: int = 0
    teacher_cost_usd: float = 0.0


class TrainingRow(Record):
    prompt: str
    completion: str
    uid: str
    sample: int


def _usage(reply) -> tuple[int, int, float]:
    if isinstance(reply, TeacherReply):
        return reply.input_tokens, reply.output_tokens, reply.cost_usd
    return 0, 0, 0.0


def collect_samples(items: Sequence[DocItem], samples: int, temperature: float, max_sub_questions: int,
                    teacher: TeacherCall) -> list[DecompositionSample]:
    """k decompositions per item from the teacher, each solved by the teacher and scored."""
    requests = [TeacherRequest(doc.decomposition_messages(item.question, max_sub_questions), temperature=temperature,
                               metadata={"sample": j, "template": "doc-decompose"})
                for item in items for j in range(samples)]
    records = []
    for i, reply in enumerate(teacher(requests)):
        item, j = items[i // samples], i % samples
        text = reply.text if isinstance(reply, TeacherReply) else ""
        try:
            sub_questions, parsed, error = doc.parse_decomposition(text, max_sub_questions), True, ""
        except ParseError as exc:
            sub_questions, parsed, error = [], False, str(exc) if text else f"teacher error: {reply}"
        n_in, n_out, usd = _usage(reply)
        records.append(DecompositionSample(uid=item.uid, domain=item.domain, question=item.question,
                                           answer=item.answer, sample=j, decomposition=text,
                                           sub_questions=sub_questions, parsed=parsed, parse_error=error,
                                           teacher_input_tokens=n_in, teacher_output_tokens=n_out,
                                           teacher_cost_usd=usd))
    by_uid = {item.uid: item for item in items}
    solvable = [r for r in records if r.parsed]
    solves = teacher([TeacherRequest(doc.solving_messages(r.question, r.sub_questions),
                                     metadata={"template": "doc-solve"}) for r in solvable])
    for record, reply in zip(solvable, solves):
        n_in, n_out, usd = _usage(reply)
        record.teacher_input_tokens += n_in
        record.teacher_output_tokens += n_out
        record.teacher_cost_usd += usd
        if not isinstance(reply, TeacherReply):
            continue
        record.solution = reply.text
        try:
            record.predicted = doc.parse_solution(reply.text).final_answer
        except ParseError:
            continue
        record.score = get_domain(record.domain).score(record.predicted, by_uid[record.uid])
        record.solved = record.score >= 1.0
    return records


def rejection_sample(records: Sequence[DecompositionSample]) -> list[DecompositionSample]:
    """SD-R's data: exactly the parsed decompositions whose solve reached the gold answer."""
    return [r for r in records if r.parsed and r.solved]


def decomposer_rows(records: Sequence[DecompositionSample], max_sub_questions: int) -> list[TrainingRow]:
    return [TrainingRow(prompt=doc.student_decomposition_prompt(r.question, max_sub_questions),
                        completion=doc.render_decomposition(r.sub_questions), uid=r.uid, sample=r.sample)
            for r in records if r.parsed]


def substitute_final_answer(solution: str, answer: str) -> str:
    """The solution with its last final-answer line replaced by `answer` (SE-A's target)."""
    head, sep, _ = solution.rpartition(doc.FINAL_MARKER)
    if not sep:
        raise ValueError(f"solution has no '{doc.FINAL_MARKER}' line to substitute")
    return f"{head}{doc.FINAL_MARKER} {answer}"


def solver_rows(records: Sequence[DecompositionSample], gold_answer: bool) -> list[TrainingRow]:
    """One row per question: its first sample's teacher solution (SE-T), or with the gold answer (SE-A)."""
    first = {}
    for r in records:
        if r.parsed and r.predicted and r.uid not in first:
            first[r.uid] = r
    return [TrainingRow(prompt=doc.student_solving_prompt(r.question, r.sub_questions),
                        completion=substitute_final_answer(r.solution, r.answer) if gold_answer else r.solution,
                        uid=r.uid, sample=r.sample) for r in first.values()]

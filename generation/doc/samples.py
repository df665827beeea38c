"""Teacher samples for the students, and the rows each student trains on.

For every training question the teacher draws `k` decompositions; each is solved by the teacher
solver and checked against the gold answer. From those records:
- SD-T trains on every parsed decomposition; SD-R only on those with which the solver reached the
  gold answer (rejection sampling, Wu et al. 2024);
- SE-T trains on the teacher's solution (given the teacher's first decomposition), SE-A on the same
  solution with the gold answer substituted in its final-answer line.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from generation.doc.asks import decomposition_ask, solving_ask
from generation.doc.domains import DocItem, get_domain
from generation.doc import prompts as doc
from generation.storage.records import Record
from generation.teachers.service import Answer, Ask


class AsksTeacher(Protocol):
    """The teacher as DoC needs it: a `generation.teachers.service.TeacherService` (tests may script one)."""

    def ask(self, asks: list[Ask]) -> list[Answer]: ...


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


def _add_usage(record: DecompositionSample, answer: Answer) -> None:
    reply = answer.reply  # the last reply asked for (None when the request itself failed)
    if reply is not None:
        record.teacher_input_tokens += reply.input_tokens
        record.teacher_output_tokens += reply.output_tokens
        record.teacher_cost_usd += reply.cost_usd


def collect_samples(items: Sequence[DocItem], samples: int, temperature: float, max_sub_questions: int,
                    teacher: AsksTeacher) -> list[DecompositionSample]:
    """k decompositions per item from the teacher, each solved by the teacher and scored.

    A decomposition the teacher service rejected (unreadable after its re-asks, or the request failed)
    stays a sample with `parsed=False` and the reason, as an unparseable one always did; its rejection
    is in the service's `rejections`. A solution without a final answer leaves the sample unsolved."""
    asks = [decomposition_ask(item.question, max_sub_questions, f"{item.uid}-decompose-{j}", temperature, j)
            for item in items for j in range(samples)]
    records = []
    for i, answer in enumerate(teacher.ask(asks)):
        item, j = items[i // samples], i % samples
        rejected = answer.rejection
        record = DecompositionSample(uid=item.uid, domain=item.domain, question=item.question, answer=item.answer,
                                     sample=j, decomposition=answer.reply.text if answer.reply else "",
                                     sub_questions=answer.value or [], parsed=answer.ok,
                                     parse_error=f"{rejected.reason_kind}: {rejected.reason}" if rejected else "")
        _add_usage(record, answer)
        records.append(record)
    by_uid = {item.uid: item for item in items}
    solvable = [r for r in records if r.parsed]
    solves = teacher.ask([solving_ask(r.question, r.sub_questions, f"{r.uid}-solve-{r.sample}") for r in solvable])
    for record, answer in zip(solvable, solves):
        _add_usage(record, answer)
        if answer.reply is not None:
            record.solution = answer.reply.text
        if answer.ok:
            record.predicted = answer.value
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

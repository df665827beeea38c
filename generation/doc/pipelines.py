"""One Divide-or-Conquer pipeline on a batch of questions: decomposer -> solver, scored and costed.

A pipeline spec names each stage's model: the decomposer is "none" (single stage), "teacher" or
"student" (with a checkpoint); the solver is "teacher" or "student". A decomposition that does not
parse leaves the solver with no sub-questions (counted in `decomposition_valid`). Cost per question:
the teacher's input/output tokens and dollars (the price table of the teacher config), the
decomposition's share apart, and the student's tokens apart (students are not billed).

The teacher is asked through the teacher service with the stage's parser; an evaluation service asks
once (no re-asks): a reply the pipeline cannot read is what the pipeline measured, as in the paper.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from generation.doc.asks import decomposition_ask, solving_ask
from generation.doc.domains import DocItem, exact, get_domain
from generation.doc.samples import AsksTeacher
from generation.doc import prompts as doc
from generation.prompts.calls import ParseError
from generation.teachers.service import Answer, Ask


class TextGenerator(Protocol):
    def generate(self, prompts: list[str], max_new_tokens: int) -> list[tuple[str, int, int]]:
        """(reply, prompt tokens, generated tokens) per prompt."""


StudentLoader = Callable[[str], TextGenerator]
COST_KEYS = ("teacher_input_tokens", "teacher_output_tokens", "teacher_cost_usd", "decomposition_teacher_cost_usd",
             "student_input_tokens", "student_output_tokens")


def _empty_record(item: DocItem) -> dict[str, Any]:
    return {"uid": item.uid, "domain": item.domain, "steps": item.steps, **dict.fromkeys(COST_KEYS, 0),
            "sub_questions": [], "decomposition_valid": True, "decomposition": "", "solution": "", "predicted": None}


def _add_teacher(record: dict[str, Any], answer: Answer, decomposition: bool) -> str:
    reply = answer.reply
    if reply is None:  # the request failed (its rejection says why); nothing was billed
        record["teacher_error"] = answer.rejection.reason if answer.rejection else "no reply"
        return ""
    record["teacher_input_tokens"] += reply.input_tokens
    record["teacher_output_tokens"] += reply.output_tokens
    record["teacher_cost_usd"] += reply.cost_usd
    if decomposition:
        record["decomposition_teacher_cost_usd"] += reply.cost_usd
    return reply.text


def _stage(kind: str, checkpoint: str | None, teacher_asks: list[Ask], student_prompts: list[str],
           records: list[dict[str, Any]], teacher: AsksTeacher, load_student: StudentLoader, max_new_tokens: int,
           decomposition: bool) -> list[str]:
    """Run one stage for every record with the teacher or a student; return the reply texts."""
    if kind == "teacher":
        return [_add_teacher(r, answer, decomposition) for r, answer in zip(records, teacher.ask(teacher_asks))]
    if kind != "student" or not checkpoint:
        raise ValueError(f"pipeline stage {kind!r} needs to be 'teacher' or 'student' with a checkpoint")
    texts = []
    for record, (text, n_in, n_out) in zip(records, load_student(checkpoint).generate(student_prompts, max_new_tokens)):
        record["student_input_tokens"] += n_in
        record["student_output_tokens"] += n_out
        texts.append(text)
    return texts


def run_pipeline(spec: dict[str, Any], items: Sequence[DocItem], teacher: AsksTeacher, load_student: StudentLoader,
                 max_sub_questions: int, decompose_tokens: int = 96, solve_tokens: int = 192) -> list[dict[str, Any]]:
    """Per-question records: sub-questions, solution, predicted answer, score, exact match and cost."""
    records = [_empty_record(item) for item in items]
    decomposer = spec.get("decomposer", "none")
    if decomposer != "none":
        texts = _stage(decomposer, spec.get("decomposer_checkpoint"),
                       [decomposition_ask(i.question, max_sub_questions, f"{i.uid}-decompose") for i in items],
                       [doc.student_decomposition_prompt(i.question, max_sub_questions) for i in items],
                       records, teacher, load_student, decompose_tokens, decomposition=True)
        for record, text in zip(records, texts):
            record["decomposition"] = text
            try:
                record["sub_questions"] = doc.parse_decomposition(text, max_sub_questions)
            except ParseError as exc:
                record["decomposition_valid"], record["decomposition_error"] = False, str(exc)
    texts = _stage(spec.get("solver", "teacher"), spec.get("solver_checkpoint"),
                   [solving_ask(i.question, r["sub_questions"], f"{i.uid}-solve") for i, r in zip(items, records)],
                   [doc.student_solving_prompt(i.question, r["sub_questions"]) for i, r in zip(items, records)],
                   records, teacher, load_student, solve_tokens, decomposition=False)
    for item, record, text in zip(items, records, texts):
        record["solution"] = text
        try:
            record["predicted"] = doc.parse_solution(text).final_answer
        except ParseError as exc:
            record["solution_error"] = str(exc)
        record["score"] = get_domain(item.domain).score(record["predicted"], item)
        record["exact_match"] = exact(record["predicted"], item)
        record["gold_decomposition"] = record["sub_questions"] == list(item.sub_questions)
    return records


def summarise(records: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Accuracy (the domain's metric) and mean cost per question of one pipeline's records."""
    n = len(records)
    if not n:
        raise ValueError("summarise: no records")
    mean = lambda key: sum(float(r[key]) for r in records) / n  # noqa: E731
    out: dict[str, Any] = {"accuracy": mean("score"), "metric": metric, "exact_match": mean("exact_match"),
                           "questions": n, "decomposition_valid": mean("decomposition_valid"),
                           "gold_decomposition": mean("gold_decomposition")}
    out.update({f"{key}_per_q": mean(key) for key in COST_KEYS})
    out["teacher_errors"] = sum("teacher_error" in r for r in records)
    return out

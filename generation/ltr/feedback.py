"""Teacher feedback on an exam: requests from the student's mistakes, training rows from the replies.

Per question the student got wrong (some sample wrong), up to `negatives_per_question` distinct wrong
rationales each get a request: tailored (question + that rationale + gold answer) or, for the
"without tailoring" ablation, plain (question + gold answer). Each reply's rationales become rows:
anchor = rationale i, positive = rationale i+1 of the same reply, negative = the wrong rationale
itself. Questions answered right throughout get one plain rationale without a triplet
(`include_correct`), so a round does not forget what the student knew.

This module says what LtR asks and how a reply is read (`feedback_asks`); the teacher service
(`generation/teachers/service.py`) owns how it is asked: limiter, cache, re-asks, rejections, accounting.
`collect` turns its answers into rows; `generation.storage.shards.plan_units` cuts a batch into the units committed one by one
(`ray_jobs/ltr_feedback.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from generation.ltr.prompts import (parse_rationales, plain_messages, rationales_followup, student_prompt,
                                    tailored_messages)
from generation.ltr.records import ExamRecord, LtrTrainingRecord
from generation.storage.records import RejectionRecord
from generation.teachers.base import TeacherRequest
from generation.teachers.service import Ask, Answer


@dataclass(frozen=True)
class FeedbackRequest:
    request: TeacherRequest
    question_id: str
    question: str
    count: int  # rationales asked for
    tailored: bool
    negative: ExamRecord | None  # the wrong sample this request answers
    correct_sample: ExamRecord | None = None  # for a question answered right


def build_requests(exam: list[ExamRecord], tailored: bool, rationales: int, negatives_per_question: int,
                   include_correct: bool) -> list[FeedbackRequest]:
    by_question: dict[str, list[ExamRecord]] = {}
    for record in exam:
        by_question.setdefault(record.question_id, []).append(record)
    out = []
    for qid, records in by_question.items():
        first, wrong, seen = records[0], [], set()
        for record in records:
            if not record.correct and record.rationale not in seen:
                seen.add(record.rationale)
                wrong.append(record)
        if not wrong:
            if include_correct:
                request = TeacherRequest(plain_messages(first.question, first.gold_answer, 1),
                                         request_id=f"{first.exam}/{qid}/known")
                out.append(FeedbackRequest(request, qid, first.question, 1, False, None, first))
            continue
        for j, negative in enumerate(wrong[:negatives_per_question]):
            messages = tailored_messages(first.question, negative.rationale, first.gold_answer, rationales) \
                if tailored else plain_messages(first.question, first.gold_answer, rationales)
            kind = "tailored" if tailored else "plain"
            request = TeacherRequest(messages, request_id=f"{first.exam}/{qid}/{kind}-{j}")
            out.append(FeedbackRequest(request, qid, first.question, rationales, tailored, negative))
    return out


def warmup_requests(questions: list, rationales: int) -> list[FeedbackRequest]:
    """Plain requests for the warm-up questions (`QAItem`s): the teacher's rationales the student starts from."""
    return [FeedbackRequest(TeacherRequest(plain_messages(q.question, q.answer, rationales),
                                           request_id=f"warmup/{q.uid}/plain"), q.uid, q.question, rationales, False,
                            None) for q in questions]


def feedback_asks(items: list[FeedbackRequest], stage: str) -> list[Ask]:
    """What LtR asks: each request, read back as up to `count` rationales (the service re-asks or rejects
    a reply without them)."""
    return [Ask(item.request, parse=functools.partial(parse_rationales, n=item.count), stage=stage,
                followup=rationales_followup) for item in items]


def rows_from_rationales(item: FeedbackRequest, rationales: list[str], round_index: int, exam: str
                         ) -> list[LtrTrainingRecord]:
    """Training rows of one request's parsed rationales: anchor i, positive i+1, the wrong sample as negative."""
    negative = item.negative.rationale if item.negative else None  # verbatim: never the gold answer appended
    sample = item.negative or item.correct_sample
    rows = []
    for i, rationale in enumerate(rationales):
        positive = rationales[(i + 1) % len(rationales)] if len(rationales) > 1 and negative else None
        rows.append(LtrTrainingRecord(
            prompt=student_prompt(item.question), completion=rationale, positive=positive,
            negative=negative if positive else None, round=round_index, exam=exam, question_id=item.question_id,
            exam_sample_id=sample.sample_id if sample else None, teacher_request_id=item.request.request_id,
            tailored=item.tailored, rationale_index=i))
    return rows


def collect(items: list[FeedbackRequest], answers: list[Answer], round_index: int, exam: str
            ) -> tuple[list[LtrTrainingRecord], list[RejectionRecord], dict[str, Any]]:
    """(training rows, rejections, figures) from the service's answers (answer i answers request i).

    Cost and tokens are those of the replies the rows came from (a reply served by the cache counts what
    it cost when first paid), so a resumed batch reports what a fresh one would."""
    rows, rejected = [], []
    cost, tokens_in, tokens_out = 0.0, 0, 0
    for item, answer in zip(items, answers, strict=True):
        if answer.reply is not None:
            reply = answer.reply
            cost, tokens_in, tokens_out = cost + reply.cost_usd, tokens_in + reply.input_tokens, \
                tokens_out + reply.output_tokens
        if answer.ok:
            rows += rows_from_rationales(item, answer.value, round_index, exam)
        else:
            rejected.append(answer.rejection)
    stats = {"teacher_requests": len(items), "rejected": len(rejected), "train_rows": len(rows),
             "triplets": sum(r.positive is not None for r in rows), "teacher_cost_usd": cost,
             "teacher_input_tokens": tokens_in, "teacher_output_tokens": tokens_out}
    return rows, rejected, stats


def ltr_teacher_service(teacher_cfg, hooks: Any = None, max_reasks: int = 0):
    """The teacher service for LtR: the built-in expert answers feedback prompts with `ltr.tutor`."""
    from generation.ltr import tutor
    from generation.teachers.service import TeacherService

    return TeacherService(teacher_cfg, hooks, max_reasks=max_reasks, env=None, expert=tutor)

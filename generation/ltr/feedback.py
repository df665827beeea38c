"""Teacher feedback on an exam: requests from the student's mistakes, training rows from the replies.

Per question the student got wrong (some sample wrong), up to `negatives_per_question` distinct wrong
rationales each get a request: tailored (question + that rationale + gold answer) or, for the
"without tailoring" ablation, plain (question + gold answer). Each reply's rationales become rows:
anchor = rationale i, positive = rationale i+1 of the same reply, negative = the wrong rationale
itself. Questions answered right throughout get one plain rationale without a triplet
(`include_correct`), so a round does not forget what the student knew.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from generation.ltr.records import ExamRecord, LtrTrainingRecord
from generation.prompts.calls import ParseError
from generation.ltr.prompts import parse_rationales, plain_messages, student_prompt, tailored_messages
from generation.storage.records import RejectionRecord
from generation.teachers.base import TeacherError, TeacherReply, TeacherRequest


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


def rows_from_reply(item: FeedbackRequest, reply: TeacherReply, round_index: int, exam: str
                    ) -> list[LtrTrainingRecord]:
    """Training rows of one reply; ParseError when the reply holds no usable rationale."""
    rationales = parse_rationales(reply.text, item.count)
    negative = item.negative.rationale if item.negative else None  # verbatim: never the gold answer appended
    sample = item.negative or item.correct_sample
    rows = []
    for i, rationale in enumerate(rationales):
        positive = rationales[(i + 1) % len(rationales)] if len(rationales) > 1 and negative else None
        rows.append(LtrTrainingRecord(
            prompt=student_prompt(item.question), completion=rationale, positive=positive,
            negative=negative if positive else None, round=round_index, exam=exam, question_id=item.question_id,
            exam_sample_id=sample.sample_id if sample else None, teacher_request_id=reply.request_id,
            tailored=item.tailored, rationale_index=i))
    return rows


def _rejection(item: FeedbackRequest, kind: str, reason: str, last_reply: str, model: str) -> RejectionRecord:
    return RejectionRecord(request_id=item.request.request_id, prompt_hash=item.request.prompt_hash,
                           stage="ltr_feedback", reason_kind=kind, reason=reason[:500], asks=1,
                           last_reply=last_reply[:300], model=model)


def collect(items: list[FeedbackRequest], replies: list[TeacherReply | TeacherError], round_index: int,
            exam: str) -> tuple[list[LtrTrainingRecord], list[RejectionRecord], dict[str, Any]]:
    """(training rows, rejections, accounting) from the replies (reply i answers request i)."""
    rows, rejected = [], []
    cost, tokens_in, tokens_out = 0.0, 0, 0
    for item, reply in zip(items, replies):
        if isinstance(reply, TeacherError):
            rejected.append(_rejection(item, f"teacher_error:{reply.kind}", reply.message, "", ""))
            continue
        cost, tokens_in, tokens_out = cost + reply.cost_usd, tokens_in + reply.input_tokens, \
            tokens_out + reply.output_tokens
        try:
            rows += rows_from_reply(item, reply, round_index, exam)
        except ParseError as exc:
            rejected.append(_rejection(item, "parse", str(exc), reply.text, reply.model))
    stats = {"teacher_requests": len(items), "rejected": len(rejected), "train_rows": len(rows),
             "triplets": sum(r.positive is not None for r in rows), "teacher_cost_usd": cost,
             "teacher_input_tokens": tokens_in, "teacher_output_tokens": tokens_out}
    return rows, rejected, stats


def ask_teacher(teacher_cfg, requests: list[TeacherRequest]) -> list[TeacherReply | TeacherError]:
    """All requests through the configured backend (the expert teacher answers with `ltr.tutor`)."""
    from generation.ltr import tutor
    from generation.teachers.base import complete_many
    from generation.teachers.registry import build_teacher

    async def run() -> list[TeacherReply | TeacherError]:
        async with build_teacher(teacher_cfg, env=None, expert=tutor) as teacher:
            return await complete_many(teacher, requests, teacher_cfg.concurrency)

    return asyncio.run(run())

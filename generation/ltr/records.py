"""Learn-to-Reason records: every exam answer, and every training row with its lineage.

A training row is traceable to its round, the exam and the exam sample it answers (the student's
wrong rationale, kept verbatim as the negative: never with the gold answer appended) and the teacher
request that wrote its rationale. The rows are written as parquet that `training.train` reads directly
(prompt, completion, weight, positive, negative; the lineage columns ride along).
"""

from __future__ import annotations

from typing import Literal

from generation.storage.records import Record


class ExamRecord(Record):
    kind: Literal["ltr_exam"] = "ltr_exam"
    exam: str  # "r0" (the shared round-0 exam), "<arm>-r<k>", or "heldout-..." for evaluations
    round: int
    question_id: str
    sample_id: str  # "<exam>/<question_id>/s<k>"
    question: str
    gold_answer: str
    rationale: str  # exactly what the student wrote
    predicted: float | None
    correct: bool
    temperature: float
    checkpoint: str


class LtrTrainingRecord(Record):
    kind: Literal["ltr_train"] = "ltr_train"
    prompt: str
    completion: str  # the rationale trained on (the anchor)
    weight: float = 1.0
    positive: str | None = None  # another teacher rationale for the same question
    negative: str | None = None  # the student's own wrong rationale, verbatim
    round: int
    exam: str
    question_id: str
    exam_sample_id: str | None  # the exam sample this row answers (the negative's; a correct one's without)
    teacher_request_id: str
    tailored: bool
    rationale_index: int

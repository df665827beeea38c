"""The Divide-or-Conquer worker: collects teacher samples or runs pipelines on a chunk of questions.

A plain class (tests call it directly); `ray_jobs/doc.py` runs it as a Ray actor. It has the shape
`ray_jobs.evaluate` drives (constructor `(cfg, run_dir, index)`, `run(name, spec, chunk)`), so the
evaluation job's chunking and dead-worker retries serve it unchanged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from generation.doc.domains import DocItem
from generation.doc.expert import DocExpertTeacher
from generation.doc.pipelines import run_pipeline
from generation.doc.samples import collect_samples
from generation.doc.simulate import ExpertErrorModel
from generation.teachers.accounting import UsageMeter
from generation.teachers.base import complete_many
from generation.teachers.stack import build_teacher_stack


class DocWorker:
    def __init__(self, cfg: Any, run_dir: str | Path, index: int = 0) -> None:
        import torch

        torch.set_num_threads(1)  # one worker per core; more threads only fight each other
        self.cfg = cfg
        self.index = index
        self.meter = UsageMeter()
        errors = ExpertErrorModel(**cfg.expert.model_dump())
        self.backend = build_teacher_stack(cfg.teacher, meter=self.meter, expert_class=DocExpertTeacher,
                                           errors=errors)
        self.loop = asyncio.new_event_loop()
        self.students: dict[str, Any] = {}

    def teacher(self, requests: list) -> list:
        return self.loop.run_until_complete(complete_many(self.backend, requests, self.cfg.eval.teacher_concurrency))

    def student(self, checkpoint: str):
        if checkpoint not in self.students:
            from generation.doc.student import TextStudent

            self.students[checkpoint] = TextStudent(checkpoint, batch_size=self.cfg.eval.batch_size)
        return self.students[checkpoint]

    def run(self, name: str, spec: dict[str, Any], items: list[DocItem]) -> list[dict[str, Any]]:
        task = self.cfg.task
        if spec.get("kind") == "collect":
            records = collect_samples(items, task.samples_per_question, task.sample_temperature,
                                      task.max_sub_questions, self.teacher)
            return [r.model_dump() for r in records]
        return run_pipeline(spec, items, self.teacher, self.student, task.max_sub_questions,
                            self.cfg.eval.decompose_max_new_tokens, self.cfg.eval.solve_max_new_tokens)

    def usage(self) -> dict[str, Any]:
        return self.meter.snapshot()

"""The Divide-or-Conquer workers: one unit of teacher samples, or pipelines on a chunk of questions.

Both are plain (tests call them directly); `ray_jobs/doc.py` and `ray_jobs/doc_samples.py` run them on
Ray. Every teacher call goes through one `TeacherService` built with the job's `hooks` (the cluster-wide
rate limiter, the response cache, the stats hub: `ray_jobs/teacher_services.py`); without hooks it is
a private, uncached service. `DocWorker` has the shape `ray_jobs.evaluate` drives (constructor
`(cfg, run_dir, index, hooks)`, `run(name, spec, chunk)`), so the evaluation job's chunking and
dead-worker retries serve it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.doc.domains import DocItem
from generation.doc.expert import DocExpertTeacher
from generation.doc.pipelines import run_pipeline
from generation.doc.samples import collect_samples
from generation.doc.simulate import ExpertErrorModel
from generation.teachers.service import TeacherService


def doc_teacher_service(cfg: Any, hooks: Any = None, max_reasks: int = 0) -> TeacherService:
    """The teacher service of a DoC run; the offline expert answers with the run's simulated error model."""
    errors = ExpertErrorModel(**cfg.expert.model_dump())
    return TeacherService(cfg.teacher, hooks, max_reasks=max_reasks, expert_class=DocExpertTeacher, errors=errors)


def sample_unit(cfg: Any, hooks: Any, items: list[DocItem]) -> dict[str, Any]:
    """One unit of the sampling job: its samples, the service's rejections and the unit's teacher usage."""
    task = cfg.task
    service = doc_teacher_service(cfg, hooks, max_reasks=task.max_reasks)
    try:
        records = collect_samples(items, task.samples_per_question, task.sample_temperature,
                                  task.max_sub_questions, service)
        service.meter.push()  # the stats hub sees the unit's last requests before the driver commits it
        return {"samples": records, "rejections": service.rejections, "usage": service.usage}
    finally:
        service.close()


class DocWorker:
    def __init__(self, cfg: Any, run_dir: str | Path, index: int = 0, hooks: Any = None) -> None:
        import torch

        torch.set_num_threads(1)  # one worker per core; more threads only fight each other
        self.cfg = cfg
        self.index = index
        # asked once: a reply a pipeline cannot read is part of what the pipeline measures
        self.service = doc_teacher_service(cfg, hooks, max_reasks=0)
        self.students: dict[str, Any] = {}

    def student(self, checkpoint: str):
        if checkpoint not in self.students:
            from generation.doc.student import TextStudent

            self.students[checkpoint] = TextStudent(checkpoint, batch_size=self.cfg.eval.batch_size)
        return self.students[checkpoint]

    def run(self, name: str, spec: dict[str, Any], items: list[DocItem]) -> list[dict[str, Any]]:
        records = run_pipeline(spec, items, self.service, self.student, self.cfg.task.max_sub_questions,
                               self.cfg.eval.decompose_max_new_tokens, self.cfg.eval.solve_max_new_tokens)
        self.service.meter.push()
        return records

    def usage(self) -> dict[str, Any]:
        return self.service.meter.snapshot()

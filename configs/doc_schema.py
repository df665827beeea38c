"""Typed config of a Divide-or-Conquer run (`logic-distill doc configs/doc_quickstart.yaml`).

Reuses the pipeline's sections (run, teacher, student, training, wandb, ray); adds the task (domains,
question counts, sub-question limit), the offline expert's simulated error model, the students to
train and the evaluation. `training.train` reads only student/training/wandb from the saved file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from configs.base import StrictModel
from configs.schema import RayConfig, RunSection
from configs.teacher_schema import ModelPrice, TeacherConfig
from configs.tracking_schema import WandbConfig
from configs.training_schema import StudentConfig, TrainingConfig

Domain = Literal["arithmetic", "kbqa"]
STUDENTS = ("sd_t", "sd_r", "se_t", "se_a")
PIPELINES = ("single_stage", "teacher>teacher", "student>teacher", "sd_t>teacher", "sd_r>teacher",
             "teacher>se_t", "teacher>se_a")
CROSS_PIPELINES = ("single_stage", "teacher>teacher", "sd_t>teacher", "sd_r>teacher")


class ArithmeticOptions(StrictModel):
    min_steps: int = Field(1, ge=1)
    max_steps: int = Field(5, ge=1)
    max_base: int = Field(20, ge=2)
    distractors: int = Field(1, ge=0)


class KBQAOptions(StrictModel):
    min_hops: int = Field(1, ge=1)
    max_hops: int = Field(4, ge=1, le=5)
    distractors: int = Field(3, ge=0)


class EvalFile(StrictModel):
    """A real dataset in its original format, evaluated with the decomposers trained on the built-in domain."""

    format: Literal["gsm8k", "svamp", "drop", "bamboogle"]
    path: str
    limit: int | None = Field(200, ge=1)


class DocTaskConfig(StrictModel):
    train_domain: Domain = "arithmetic"
    cross_domain: Domain | None = Field("kbqa", description="also test the decomposers on this domain (None: skip)")
    train_questions: int = Field(600, ge=1)
    samples_per_question: int = Field(4, ge=1, description="teacher decompositions sampled per training question")
    solver_train_questions: int = Field(250, ge=1, description="questions whose teacher solution trains SE-T/SE-A")
    sample_temperature: float = Field(0.7, ge=0.0, le=2.0, description="teacher temperature of those samples")
    questions_per_unit: int = Field(25, ge=1, description="training questions per committed unit of the sampling "
                                                          "job (what a rerun after a kill skips); changing it "
                                                          "needs a new run directory")
    max_reasks: int = Field(2, ge=0, description="re-asks of an unreadable teacher sample (decomposition or "
                                                 "solution) before it is rejected")
    eval_questions: int = Field(200, ge=1)
    max_sub_questions: int = Field(4, ge=1, le=10)
    arithmetic: ArithmeticOptions = ArithmeticOptions()
    kbqa: KBQAOptions = KBQAOptions()
    eval_files: list[EvalFile] = Field(default_factory=list, description="real datasets (needs an LLM teacher)")

    @model_validator(mode="after")
    def _distinct_domains(self) -> DocTaskConfig:
        if self.cross_domain == self.train_domain:
            raise ValueError(f"task.cross_domain must differ from task.train_domain ({self.train_domain}); "
                             "set it to null to skip the cross-domain test")
        return self


class DocExpertConfig(StrictModel):
    """The offline expert's SIMULATED mistakes (generation/doc/simulate.py); ignored by other backends."""

    decomposition_error_rate: float = Field(0.25, ge=0.0, le=1.0)
    step_error: float = Field(0.03, ge=0.0, le=1.0)
    error_growth_per_step: float = Field(0.15, ge=0.0, le=1.0)
    max_step_error: float = Field(0.9, ge=0.0, le=1.0)


class DocEvalConfig(StrictModel):
    pipelines: list[Literal[PIPELINES]] = Field(default_factory=lambda: list(PIPELINES))  # type: ignore[valid-type]
    cross_pipelines: list[Literal[CROSS_PIPELINES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(CROSS_PIPELINES))
    num_workers: int = Field(2, ge=1, description="Ray workers (also units of teacher samples in flight); "
                                                  "requests in flight per worker: teacher.concurrency")
    batch_size: int = Field(64, ge=1, description="student generation batch")
    decompose_max_new_tokens: int = Field(96, ge=8)
    solve_max_new_tokens: int = Field(192, ge=8)
    unit_retries: int = Field(2, ge=0, description="re-runs of a chunk whose Ray worker died")


def _default_teacher() -> TeacherConfig:
    # the expert is priced like the paper's teacher (GPT-3.5-turbo, $ per 1k tokens) so costs mean something
    return TeacherConfig(prices={"expert-v1": ModelPrice(input_per_1k=0.0015, output_per_1k=0.002)})


class DocRunConfig(StrictModel):
    run: RunSection = RunSection(name="doc")
    task: DocTaskConfig = DocTaskConfig()
    expert: DocExpertConfig = DocExpertConfig()
    teacher: TeacherConfig = Field(default_factory=_default_teacher)
    student: StudentConfig = StudentConfig()
    training: TrainingConfig = TrainingConfig()
    students: list[Literal[STUDENTS]] = Field(default_factory=lambda: list(STUDENTS))  # type: ignore[valid-type]
    eval: DocEvalConfig = DocEvalConfig()
    wandb: WandbConfig = WandbConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _students_for_pipelines(self) -> DocRunConfig:
        needed = {p.replace(">teacher", "").replace("teacher>", "") for p in [*self.eval.pipelines,
                                                                              *self.eval.cross_pipelines]}
        missing = sorted((needed & set(STUDENTS)) - set(self.students))
        if missing:
            raise ValueError(f"eval pipelines need the student(s) {missing}; add them to `students`")
        if self.task.eval_files and self.teacher.backend == "expert":
            raise ValueError("task.eval_files: the offline expert teacher reads only the built-in domains; "
                             "use an LLM teacher (teacher.backend=openai or hf) for real datasets")
        return self

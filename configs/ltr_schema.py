"""Typed config of a Learn-to-Reason run (`logic-distill ltr configs/ltr_quickstart.yaml`).

Reuses the pipeline's sections (run, teacher, student, training, wandb, ray) and adds the task
(question source), the warm-up, the exam, the teacher feedback, the loss, the rounds and the ablations.
Method and defaults: docs/learn_to_reason.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from configs.base import StrictModel
from configs.schema import RayConfig, RunSection
from configs.teacher_schema import TeacherConfig
from configs.tracking_schema import WandbConfig
from configs.training_schema import StudentConfig, TrainingConfig

ARMS = ("full", "no_reflection", "no_tailoring", "one_round")


class LtrLossSettings(StrictModel):
    """The training objective: MLE over prompt + rationale, plus the self-reflection triplet loss.

    Written into each round's training config as the `ltr_loss` section, which `training.train` reads.
    """

    prompt_weight: float = Field(0.1, ge=0.0, le=1.0, description="weight of prompt tokens in the MLE")
    reflection_weight: float = Field(0.5, ge=0.0, description="lambda: weight of the self-reflection loss")
    margin: float = Field(1.0, gt=0.0, le=2.0, description="rho of max(0, rho - cos(a, p) + cos(a, n))")


DerivedKind = Literal["more", "fewer", "times", "half", "sum"]


class ArithmeticSettings(StrictModel):
    """Knobs of the built-in word-problem generator (generation/datasets/arithmetic.py).

    The defaults suit a tiny student trained from scratch on CPU: additions and subtractions of small
    numbers in 1-2 steps, which it learns well enough to make real (not random) mistakes.
    """

    min_steps: int = Field(1, ge=1)
    max_steps: int = Field(2, ge=1)
    max_base: int = Field(9, ge=2)
    shapes: list[Literal["chain", "tree"]] = Field(default_factory=lambda: ["chain"])
    distractors: int = Field(0, ge=0)
    kinds: list[DerivedKind] = Field(default_factory=lambda: ["more", "fewer"], min_length=1,
                                     description="which derived facts may appear (all five: the full generator)")

    @model_validator(mode="after")
    def _steps_in_order(self) -> "ArithmeticSettings":
        if self.max_steps < self.min_steps:
            raise ValueError(f"task.arithmetic.max_steps ({self.max_steps}) must be >= min_steps ({self.min_steps})")
        return self


class LtrTaskConfig(StrictModel):
    """Where questions come from: the built-in generator, or local GSM8K / SVAMP files."""

    source: Literal["arithmetic", "gsm8k", "svamp"] = "arithmetic"
    arithmetic: ArithmeticSettings = ArithmeticSettings()
    train_path: str | None = Field(None, description="gsm8k: train.jsonl; svamp: SVAMP.json (split by seed)")
    test_path: str | None = Field(None, description="gsm8k: test.jsonl; svamp: unused (held out from train_path)")
    warmup_questions: int = Field(150, ge=1, description="questions with gold rationales for the warm-up SFT")
    train_questions: int = Field(200, ge=1, description="exam questions of every round")
    heldout_questions: int = Field(200, ge=1, description="held-out questions for per-round accuracy")
    seed: int = 0

    @model_validator(mode="after")
    def _files_for_datasets(self) -> "LtrTaskConfig":
        if self.source != "arithmetic" and not self.train_path:
            raise ValueError(f"task.source={self.source} needs task.train_path (a local file)")
        if self.source == "gsm8k" and not self.test_path:
            raise ValueError("task.source=gsm8k needs task.test_path (GSM8K test.jsonl)")
        return self


class WarmupConfig(StrictModel):
    """The documented warm-up: a from-scratch student first learns the rationale format on a few gold
    rationales, so its round-0 exam makes real mistakes instead of producing noise."""

    enabled: bool = True
    rationales: Literal["teacher", "gold"] = Field(
        "teacher", description="teacher: the teacher's plain rationales for the warm-up questions "
        "(warmup.rationales_per_question each), so the student already writes in the styles the rounds' "
        "feedback uses; gold: the dataset's own rationales")
    rationales_per_question: int = Field(3, ge=1, description="with rationales=teacher: plain rationales per "
                                         "warm-up question (every style the feedback may use)")
    epochs: float = Field(3.0, gt=0)


class ExamConfig(StrictModel):
    samples: int = Field(4, ge=1, description="k: rationales sampled per training question")
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    max_new_tokens: int = Field(96, ge=8)
    batch_size: int = Field(64, ge=1)
    num_workers: int = Field(2, ge=1, description="Ray workers sharing the exam (and the held-out evaluation)")


class FeedbackConfig(StrictModel):
    rationales_per_question: int = Field(2, ge=1, description="teacher rationales per wrong question (positives)")
    negatives_per_question: int = Field(1, ge=1, description="wrong student rationales kept per question")
    include_correct: bool = Field(True, description="also train on questions the student got right, with "
                                  "plain teacher rationales (no triplet): rounds do not forget what was known")
    requests_per_unit: int = Field(32, ge=1, description="teacher requests per committed unit of a feedback batch "
                                   "(and of the warm-up's): a kill redoes at most the unit in progress, from the "
                                   "response cache for what was already answered")
    max_reasks: int = Field(2, ge=0, description="re-asks of a reply without usable rationales before it becomes "
                            "a rejection")


class RoundsConfig(StrictModel):
    num_rounds: int = Field(3, ge=1, description="training rounds after the round-0 exam")
    epochs: float = Field(3.0, gt=0, description="epochs over each round's data")
    learning_rate: float | None = Field(None, gt=0, description="peak lr of the round trainings (which continue "
                                        "a trained student); None: the same as the warm-up's")


class LtrTrainingLaunch(StrictModel):
    """How each training of the run is started."""

    in_process: bool = Field(False, description="train inside the pipeline's process (one process, no DeepSpeed): "
                             "no launcher start-up per training, for small CPU runs; false: `accelerate launch`")
    threads: int = Field(1, ge=1, description="torch threads of an in-process training (one per core it may use; "
                         "more than the free cores slows a tiny model down several times)")


class AblationsConfig(StrictModel):
    no_reflection: bool = Field(True, description="the same rounds with reflection_weight = 0")
    no_tailoring: bool = Field(True, description="plain teacher rationales for the same questions")
    one_round: bool = Field(True, description="one round, trained as long as all rounds together")


class LtrRunConfig(StrictModel):
    run: RunSection = RunSection(name="ltr")
    task: LtrTaskConfig = LtrTaskConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    training: TrainingConfig = TrainingConfig()
    launch: LtrTrainingLaunch = LtrTrainingLaunch()
    warmup: WarmupConfig = WarmupConfig()
    exam: ExamConfig = ExamConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    loss: LtrLossSettings = LtrLossSettings()
    rounds: RoundsConfig = RoundsConfig()
    ablations: AblationsConfig = AblationsConfig()
    wandb: WandbConfig = WandbConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _training_fits(self) -> "LtrRunConfig":
        if self.training.packing:
            raise ValueError("training.packing is not supported by Learn-to-Reason (triplets need whole sequences)")
        if self.launch.in_process and self.training.num_processes != 1:
            raise ValueError(f"launch.in_process trains in one process; training.num_processes is "
                             f"{self.training.num_processes} (set launch.in_process=false to launch them)")
        return self

    def arms(self) -> list[str]:
        """The arms this run trains: the full method, then the enabled ablations."""
        return ["full", *(a for a in ARMS[1:] if getattr(self.ablations, a))]

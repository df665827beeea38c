"""The typed config of one run of the pipeline: every section, its defaults, and its checks.

`RunConfig()` with no YAML at all is the embedded default: offline, CPU, the built-in expert
teacher, a tiny student built from a preset. Shipped YAML files in `configs/` only change knobs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from configs.base import StrictModel
from configs.sandbox_schema import SandboxLimits
from configs.task_schema import PursuitConfig
from configs.teacher_schema import TeacherConfig
from configs.tracking_schema import WandbConfig
from configs.training_schema import StudentConfig, TrainingConfig

POLICIES = ("teacher", "ld_student", "kd_student", "majority")


class RunSection(StrictModel):
    name: str = Field("quickstart", pattern=r"^[A-Za-z0-9_.\-]+$")
    output_dir: str = "runs"
    seed: int = 0


class TaskConfig(StrictModel):
    env: Literal["pursuit"] = "pursuit"
    pursuit: PursuitConfig = PursuitConfig()


class GenerationConfig(StrictModel):
    """Teacher demonstrations on the training seeds, produced by a pool of Ray actors."""

    train_episodes: int = Field(240, ge=1)
    num_actors: int = Field(2, ge=1)
    episodes_per_task: int = Field(20, ge=1, description="episodes one actor plays per task (one shard)")
    top_k: int = Field(3, ge=1, le=20, description="functions retrieved per stage")
    only_successful: bool = Field(True, description="train only on episodes the teacher won")


class EvalConfig(StrictModel):
    episodes: int = Field(200, ge=1)
    num_workers: int = Field(2, ge=1)
    top_k: int = Field(3, ge=1, le=20)
    policies: list[Literal["teacher", "ld_student", "kd_student", "majority"]] = list(POLICIES)
    batch_size: int = Field(128, ge=1)
    max_new_tokens: int = Field(40, ge=1)
    sample_decisions: int = Field(12, ge=0, description="rows of sample decisions logged per policy")


class RayConfig(StrictModel):
    address: str | None = Field(None, description="None starts a local cluster; 'auto' joins a running one")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local cluster (None = all)")


class RunConfig(StrictModel):
    run: RunSection = RunSection()
    task: TaskConfig = TaskConfig()
    teacher: TeacherConfig = TeacherConfig()
    generation: GenerationConfig = GenerationConfig()
    student: StudentConfig = StudentConfig()
    training: TrainingConfig = TrainingConfig()
    eval: EvalConfig = EvalConfig()
    sandbox: SandboxLimits = SandboxLimits()
    wandb: WandbConfig = WandbConfig()
    ray: RayConfig = RayConfig()


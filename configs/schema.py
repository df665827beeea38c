"""The typed config of one run of the pipeline: every section, its defaults, and its checks.

`RunConfig()` with no YAML at all is the embedded default: offline, CPU, the built-in expert
teacher, a tiny student built from a preset. Shipped YAML files in `configs/` only change knobs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from configs.base import StrictModel
from configs.generation_schema import GenerationConfig
from configs.sandbox_schema import SandboxLimits
from configs.task_schema import PursuitConfig, TwentyOneConfig
from configs.teacher_schema import TeacherConfig
from configs.tracking_schema import WandbConfig
from configs.training_schema import StudentConfig, TrainingConfig

POLICIES = ("teacher", "ld_student", "kd_student", "majority")


class RunSection(StrictModel):
    name: str = Field("quickstart", pattern=r"^[A-Za-z0-9_.\-]+$")
    output_dir: str = "runs"
    seed: int = 0


class TaskConfig(StrictModel):
    """Which decision environment to play, and its knobs.

    `env` is a name registered in `generation.ld.envs.registry` (built in: pursuit, twentyone). A user's
    own environment registers itself when one of `env_modules` is imported; every process of a run
    (Ray actors included) imports them before building the env. `options` are free-form knobs that
    such an env's factory reads.
    """

    env: str = Field("pursuit", pattern=r"^[A-Za-z0-9_\-]+$")
    env_modules: list[str] = Field(default_factory=list,
                                   description="modules to import first; they call registry.register_env")
    options: dict[str, Any] = Field(default_factory=dict, description="knobs of a user-registered env")
    pursuit: PursuitConfig = PursuitConfig()
    twentyone: TwentyOneConfig = TwentyOneConfig()


class EvalConfig(StrictModel):
    episodes: int = Field(200, ge=1)
    num_workers: int = Field(2, ge=1)
    top_k: int = Field(3, ge=1, le=20)
    policies: list[Literal["teacher", "ld_student", "kd_student", "majority", "ld_student_no_runtime"]] = Field(
        default_factory=lambda: list(POLICIES),
        description="ld_student_no_runtime: the LD student without functions added for emergencies at run time")
    batch_size: int = Field(128, ge=1)
    max_new_tokens: int = Field(40, ge=1)
    constrain_to_candidates: bool = Field(
        True, description="LD student: choose the function name among the retrieved candidates by likelihood, "
                          "then decode the arguments (False: free greedy decoding)")
    sample_decisions: int = Field(12, ge=0, description="rows of sample decisions logged per policy")
    unit_retries: int = Field(2, ge=0, description="re-runs of a chunk of seeds whose Ray worker died")


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


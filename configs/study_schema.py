"""Typed config of a scaling study: one base run config, the axes to vary, and the resources per trial.

    study:   {name: cpu-scaling, output_dir: runs/studies, metric: success_rate}
    base:    {config: configs/quickstart.yaml, overrides: {training.num_processes: 1}}
    grid:    {student: [nano, tiny, mini], method: [ld, kd], seed: [0, 1], data_size: [400]}
    zip:     {}            # lists of equal length, varied together, crossed with the grid
    resources: {num_processes: 1, cpus: 1, gpus: 0}

Axis names are `student` (a preset name or a local checkpoint directory), `method`, `data_size`
(training episodes), `seed`, or any dotted key of the run config (`training.learning_rate`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from configs.base import StrictModel
from configs.schema import RayConfig
from configs.tracking_schema import WandbConfig

NAMED_AXES = ("student", "method", "data_size", "seed")
METHODS = ("ld", "kd")  # a method = a kind of training data + the policy that plays it (launch/study_trial.py)


class StudySection(StrictModel):
    name: str = Field("study", pattern=r"^[A-Za-z0-9_.\-]+$")
    output_dir: str = "runs/studies"
    metric: str = Field("success_rate", description="the quality metric of the plots and the fit "
                        "(an evaluation metric; valid_rate = 1 - invalid_rate)")
    fit_against: Literal["parameters", "training_flops"] = "parameters"
    eval_teacher: bool = Field(True, description="evaluate the teacher once per data group (reference line)")


class BaseRun(StrictModel):
    """The run every trial starts from: a YAML run config and/or dotted overrides applied on top."""

    config: str | None = Field(None, description="path of a run config YAML (None: the embedded defaults)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="{'training.epochs': 2, ...}")


class TrialResources(StrictModel):
    """What one trial asks the scheduler for. Training uses `num_processes` processes (one per GPU
    when `gpus` > 0); evaluation runs inside the trial, so it needs nothing more."""

    num_processes: int = Field(1, ge=1, description="training processes of one trial (training.num_processes)")
    cpus: float | None = Field(None, gt=0, description="CPUs reserved per trial (None: num_processes)")
    gpus: float = Field(0.0, ge=0, description="GPUs reserved per trial (use num_processes on GPU nodes)")

    @property
    def cpus_per_trial(self) -> float:
        return self.cpus if self.cpus is not None else float(self.num_processes)


class SlurmSection(StrictModel):
    """The sbatch array `--slurm` writes instead of running on Ray."""

    partition: str | None = None
    time: str = Field("04:00:00", pattern=r"^(\d+-)?\d{1,2}:\d{2}:\d{2}$")
    max_parallel: int | None = Field(None, ge=1, description="array throttle (%N); None = no limit")
    extra_sbatch: list[str] = Field(default_factory=list, description="more `#SBATCH` lines, e.g. --account=x")
    setup: list[str] = Field(default_factory=lambda: ["source .venv/bin/activate"],
                             description="shell lines run before each command (modules, venv)")


def _check_axis(name: str, values: Any) -> None:
    if name not in NAMED_AXES and "." not in name:
        raise ValueError(f"unknown axis {name!r}: use one of {', '.join(NAMED_AXES)} or a dotted run-config "
                         f"key such as training.learning_rate")
    if not isinstance(values, list) or not values:
        raise ValueError(f"axis {name!r} needs a non-empty list of values")
    if len({repr(v) for v in values}) != len(values):
        raise ValueError(f"axis {name!r} repeats a value: {values}")
    if name == "method" and any(v not in METHODS for v in values):
        raise ValueError(f"axis 'method' has {values}; known methods: {', '.join(METHODS)}")
    if name in ("data_size", "seed") and any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values):
        raise ValueError(f"axis {name!r} takes non-negative integers, got {values}")
    if name == "data_size" and 0 in values:
        raise ValueError("axis 'data_size' takes at least one episode")
    if name == "student" and any(not isinstance(v, str) or not v for v in values):
        raise ValueError(f"axis 'student' takes preset names or checkpoint paths, got {values}")


class StudyConfig(StrictModel):
    study: StudySection = StudySection()
    base: BaseRun = BaseRun()
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="axes crossed with each other")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="axes varied together (equal lengths)")
    resources: TrialResources = TrialResources()
    ray: RayConfig = RayConfig()
    wandb: WandbConfig = WandbConfig()
    slurm: SlurmSection = SlurmSection()

    @model_validator(mode="after")
    def _axes(self) -> "StudyConfig":
        for name, values in {**self.grid, **self.zip}.items():
            _check_axis(name, values)
        both = set(self.grid) & set(self.zip)
        if both:
            raise ValueError(f"axis {sorted(both)} is in both grid and zip; keep each axis in one")
        lengths = {name: len(v) for name, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip axes must have equal lengths, got {lengths}")
        if not self.grid and not self.zip:
            raise ValueError("a study needs at least one axis in grid or zip")
        return self

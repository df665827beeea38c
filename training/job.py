"""One training job as one object: resolved once by its launcher, written once, read once by the processes.

A launcher (launch/train_launcher.py, ray_jobs/train_ray.py, or an in-process run) reads the run
config's sections (`read_run_config`), resolves the training section for its launch
(configs/resolved_training.py), runs the start-up checks on that object, and writes it with the
job's paths to `<run_dir>/jobs/<job>.json` (`prepare_job`). `training.train` gets only that path.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml
from pydantic import BaseModel

from configs.base import StrictModel
from configs.ltr_schema import LtrLossSettings
from configs.resolved_training import ResolvedTraining, resolve_training
from configs.training_schema import StudentConfig, TrainingConfig
from generation.storage.tracking import WandbConfig


class RunConfig(BaseModel):
    """The sections of a run config that training reads, as written (not yet resolved for a launch)."""

    student: StudentConfig
    training: TrainingConfig
    wandb: WandbConfig
    ltr_loss: LtrLossSettings | None = None  # set: Learn-to-Reason objective (training/ltr_objective.py)


class TrainingJob(StrictModel):
    """Everything the training processes need; they read it and derive nothing from YAML again."""

    student: StudentConfig
    training: ResolvedTraining
    wandb: WandbConfig
    ltr_loss: LtrLossSettings | None = None
    data: list[str]
    student_dir: str
    out_dir: str
    run_dir: str
    name: str  # the job name: W&B job type, metrics/<name>.jsonl, checkpoints/<name>


def read_run_config(path: str | Path) -> RunConfig:
    """Only our sections of a run config YAML (`config.resolved.yaml`); the rest belongs to other stages."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a run config must be a mapping of sections")
    return RunConfig(student=StudentConfig.model_validate(raw.get("student") or {}),
                     training=TrainingConfig.model_validate(raw.get("training") or {}),
                     wandb=WandbConfig.model_validate(raw.get("wandb") or {}),
                     ltr_loss=LtrLossSettings.model_validate(raw["ltr_loss"]) if raw.get("ltr_loss") else None)


def job_file(run_dir: str | Path, job: str, machine_rank: int = 0) -> Path:
    """Where a job's object lives. Each node of a multi-node run writes its own (they differ in
    machine_rank), so two nodes never write one file of a shared filesystem at once."""
    suffix = f".node{machine_rank}" if machine_rank else ""
    return Path(run_dir) / "jobs" / f"{job}{suffix}.json"


def resolve_job(run_cfg: RunConfig, data, student_dir, out_dir, run_dir, job: str, *, deepspeed: bool,
                zero3_init: bool = False, world_size: int | None = None, resume: str | None = None) -> TrainingJob:
    """The job with its training section resolved for this launch (absolute paths: processes may run
    elsewhere); `resume` overrides training.resume."""
    absolute = lambda path: str(Path(path).expanduser().resolve())  # noqa: E731
    items = [data] if isinstance(data, (str, Path)) else list(data)
    if not items:
        raise ValueError("no training data given")
    training = run_cfg.training
    if resume is not None:
        resume = resume if resume in ("auto", "never") else absolute(resume)
        training = TrainingConfig.model_validate({**training.model_dump(exclude_unset=True), "resume": resume})
    resolved = resolve_training(training, deepspeed=deepspeed, zero3_init=zero3_init, world_size=world_size)
    return TrainingJob(student=run_cfg.student, training=resolved, wandb=run_cfg.wandb, ltr_loss=run_cfg.ltr_loss,
                       data=[absolute(d) for d in items], student_dir=absolute(student_dir),
                       out_dir=absolute(out_dir), run_dir=absolute(run_dir), name=job)


def write_job(job: TrainingJob, machine_rank: int = 0) -> Path:
    """Write the job object (atomically: a process must never read half a file); return its path."""
    path = job_file(job.run_dir, job.name, machine_rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    partial.write_text(job.model_dump_json(indent=1))
    partial.replace(path)
    return path


def read_job(path: str | Path) -> TrainingJob:
    return TrainingJob.model_validate_json(Path(path).read_text())


def prepare_job(job: TrainingJob, machine_rank: int = 0, check: bool = True) -> Path:
    """Run the start-up checks on the resolved job, once, then write it; return the file for the processes.
    The checks run here, in the launcher: one clear error instead of one traceback per rank."""
    if check:
        from training.preflight import run_preflight

        run_preflight(job.training, job.student_dir)
    return write_job(job, machine_rank)


def add_job_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments a person gives a launcher to describe one training job."""
    parser.add_argument("--config", required=True, help="run config YAML (student/training/wandb sections)")
    parser.add_argument("--data", required=True, nargs="+", help="parquet files or directories of them")
    parser.add_argument("--student", required=True, help="HF checkpoint directory to start from")
    parser.add_argument("--out", required=True, help="where the trained checkpoint is exported")
    parser.add_argument("--run-dir", required=True, help="run directory (metrics, W&B files, checkpoints, jobs)")
    parser.add_argument("--job", default="train", help="job name: W&B job type, metrics/<job>.jsonl, checkpoints/<job>")
    parser.add_argument("--resume", default=None, help="override training.resume: auto, never, or a checkpoint path")
    return parser


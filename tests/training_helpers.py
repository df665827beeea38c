"""Shared pieces of the training tests: a synthetic task, a tiny student, in-process and launched runs."""

from __future__ import annotations

import os
import random
from pathlib import Path

import yaml

from configs.training_schema import StudentConfig, TrainingConfig

COLOURS = ["red", "green", "blue", "amber"]
STUDENT = StudentConfig(preset="tiny", vocab_size=400, max_seq_len=128)


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Short structured task: the completion is a JSON call whose argument is named in the prompt.
    Prompts vary in length, so padding and packing both have something to do."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        colour = rng.choice(COLOURS)
        words = rng.randint(4, 20)
        noise = " ".join(rng.choice(["walls", "block", "the", "pursuer", "moves", "one", "cell"]) for _ in range(words))
        prompt = f"Turn {i}. Rules: {noise}.\nThe signal is {colour}.\nSelect one function."
        rows.append({"prompt": prompt, "completion": f'{{"call": "signal", "colour": "{colour}"}}'})
    return rows


def write_parquet(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def make_student_and_data(root: Path, n_rows: int = 240) -> tuple[Path, Path, list[dict]]:
    """(student checkpoint dir, data dir, rows): a tiny preset student with a tokenizer trained on the rows."""
    from training.student_builder import build_student

    rows = synthetic_rows(n_rows)
    data = write_parquet(rows, root / "data" / "part-0.parquet").parent
    student = build_student(STUDENT, [r["prompt"] + r["completion"] for r in rows], root / "student-init")
    return student, data, rows


def write_run_config(run_dir: Path, training: TrainingConfig, wandb_mode: str = "disabled", **sections) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.resolved.yaml"
    path.write_text(yaml.safe_dump({"student": STUDENT.model_dump(mode="json"),
                                    "training": training.model_dump(mode="json", exclude_unset=True),
                                    "wandb": {"mode": wandb_mode}, "teacher": {"ignored": "by training"},
                                    **sections}))
    return path


def launched_command(run_dir: Path, training: TrainingConfig, student: Path, data: Path,
                     wandb_mode: str = "disabled", **sections):
    """What run_training does before it starts the processes, on one CPU node: write the run config,
    resolve the job once, check and write it; the `accelerate launch` command for it."""
    from launch.train_launcher import build_launch_command, free_port, plan_launch
    from training.job import prepare_job, read_run_config

    config = write_run_config(run_dir, training, wandb_mode, **sections)
    job, accelerate_yaml = plan_launch(read_run_config(config), [data], student, run_dir / "out", run_dir, "train",
                                       cuda_available=False)
    return build_launch_command(job, prepare_job(job), accelerate_yaml, cuda_available=False, port=free_port(),
                                base_env=quiet_env())


def train_in_process(run_dir: Path, student: Path, data: Path, job: str = "train", **training) -> list[dict]:
    """One process, no DeepSpeed, in this interpreter (accelerate's singletons reset first); the side log."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from generation.storage.tracking import WandbConfig, read_side_log
    from training.job import RunConfig
    from training.train import run_in_process

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    torch.set_num_threads(1)  # the launched runs use one thread per process too
    cfg = RunConfig(student=STUDENT, training=TrainingConfig(**training), wandb=WandbConfig(mode="disabled"))
    run_in_process(cfg, [str(data)], student, run_dir / "out", run_dir, job)
    return read_side_log(run_dir, job)


def step_losses(rows: list[dict]) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for launched runs: one thread per process, W&B offline, plus `extra`."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}

"""A training of a Learn-to-Reason run inside the calling process (`launch.in_process`).

The same loop as `accelerate launch -m training.train` (the job resolved and written once, checkpoints,
resume, W&B run per job: training.train.run_in_process), on one process and without DeepSpeed. A small CPU run trains a student a dozen times;
each launch costs two interpreter starts and a DeepSpeed initialisation, more than a tiny student's
training itself, so the quickstart trains here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def train_in_process(config_path: str | Path, data: Sequence[str | Path], student_dir: str | Path,
                     out_dir: str | Path, run_dir: str | Path, job: str, threads: int) -> Path:
    """Train `job` as `training.train` would under a one-process launch; return the exported checkpoint."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from training.job import read_run_config
    from training.train import run_in_process

    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise RuntimeError("train_in_process runs without DeepSpeed, but ACCELERATE_USE_DEEPSPEED is set in this "
                           "process; unset it or set launch.in_process=false")
    # Accelerate keeps its state in process-wide singletons: each training starts from a clean one.
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    torch.set_num_threads(threads)
    return run_in_process(read_run_config(config_path), data, student_dir, out_dir, run_dir, job)

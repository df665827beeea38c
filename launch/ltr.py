"""Learn-to-Reason end to end: warm-up, round-0 exam, then rounds of exam -> tailored feedback ->
training -> held-out evaluation, for the full method and its ablations.

    logic-distill ltr configs/ltr_quickstart.yaml                      # offline, CPU, ~15 min
    logic-distill ltr configs/ltr_quickstart.yaml --run-dir runs/ltr1  # rerun: resumes at the last stage

Every stage is skipped when its marker exists (ray_jobs/ltr_rounds.StageLog); a training cut off
mid-way resumes from its own checkpoints. Layout of the run directory:
students/<init|warmup|<arm>-r<k>>, exams/<name>.parquet, eval/<name>.parquet,
data/feedback/<exam>-<tailored|plain>/{manifest.jsonl,rows-*,rejections-*.parquet} (committed unit by unit,
ray_jobs/ltr_feedback.py), data/teacher_cache.sqlite, configs/<job>.yaml, stages/, results.*

The rounds themselves live in `ray_jobs/ltr_run.py`; their training jobs are launched from here.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any

from configs.loader import save_resolved
from configs.ltr_schema import LtrRunConfig
from generation.storage.tracking import Tracker
from ray_jobs.ltr_run import LtrRun, check_same_config
from ray_jobs.stages import console


def new_run_dir(cfg: LtrRunConfig) -> Path:
    return Path(cfg.run.output_dir) / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def launch_training(cfg: LtrRunConfig, config_path: Path, data: list[Path], start: Path, out: Path, run_dir: Path,
                    job: str) -> None:
    """One training job of the run: in this process (`launch.in_process`) or as its own `accelerate` job."""
    if cfg.launch.in_process:
        from training.ltr_in_process import train_in_process

        train_in_process(config_path, data, start, out, run_dir, job, cfg.launch.threads)
    else:
        from launch.train_launcher import run_training

        run_training(config_path, data, start, out, run_dir, job)


def run_ltr(cfg: LtrRunConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """The whole Learn-to-Reason run; prints the per-round table and writes results.{json,md,png}."""
    from ray_jobs.ltr_report import write_report

    run_dir = Path(run_dir or new_run_dir(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    check_same_config(cfg, run_dir)
    save_resolved(cfg, run_dir)
    console.print(f"run directory: [bold]{run_dir}")
    started = time.perf_counter()
    history = LtrRun(cfg, run_dir, launch_training=partial(launch_training, cfg)).run()
    # The pipeline's W&B run is written once the rounds are done: trainings run in this process may
    # open their own runs meanwhile (one active run per process), and a resume continues this id.
    id_file = run_dir / "metrics" / "ltr-wandb.json"
    run_id = json.loads(id_file.read_text())["run_id"] if id_file.is_file() else None
    tracker = Tracker(run_dir, cfg.wandb, "ltr", config=cfg.model_dump(mode="json"), run_id=run_id)
    id_file.write_text(json.dumps({"run_id": tracker.run_id}))
    try:
        results = write_report(cfg, run_dir, history, tracker, time.perf_counter() - started)
        results["_wall_time_s"] = time.perf_counter() - started
    finally:
        tracker.finish()
    console.print(f"{(run_dir / 'results.md').read_text()}\nwall time {results['_wall_time_s']:.0f} s; results.json, "
                  f"results.md, results.png in run directory: [bold]{run_dir}")
    return results

"""Divide-or-Conquer (Wu et al. 2024), the order of its stages: teacher samples -> SD/SE students -> every
pipeline, costed.

    logic-distill doc configs/doc_quickstart.yaml                     # offline on CPU, minutes
    logic-distill doc configs/doc_quickstart.yaml task.eval_questions=400 --run-dir runs/doc1

Stages (each skipped on a rerun when its output exists under the run directory):
1. samples: the teacher decomposes every training question `k` times; each decomposition is solved
   by the teacher and checked against the gold answer (Ray tasks, one unit of questions each, committed
   exactly once: a rerun after a kill skips committed units) -> data/samples-*.parquet, manifest.jsonl;
   `--until samples` stops here;
2. data + students: SD-T (all decompositions), SD-R (those that reached the gold answer), SE-T / SE-A
   (teacher solutions; gold answer substituted) rows -> data/<student>.parquet, then one tokenizer +
   initial student and one `training.train` run (Accelerate + DeepSpeed) per student;
3. evaluation: every pipeline on held-out questions of the training domain, the decomposers also on
   the other domain (cross-domain) -> results.json, results.md, results.png, W&B.

The stages themselves live in `ray_jobs/doc_stages.py`; the students' training is launched from here
(`launch/train_launcher.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from configs.doc_schema import DocRunConfig
from configs.loader import save_resolved
from generation.storage.tracking import Tracker
from ray_jobs.doc_stages import (STUDENT_DATA, collect_teacher_samples, evaluate_pipelines, write_doc_results,
                                 write_student_data)
from ray_jobs.stages import console


def new_run_dir(cfg: DocRunConfig) -> Path:
    return Path(cfg.run.output_dir) / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_doc_students(cfg: DocRunConfig, run_dir: Path, data: dict[str, Path]) -> dict[str, Path]:
    """One tokenizer + initial student for all, then one training run per student."""
    from launch.train_launcher import run_training
    from training.sft_data import read_sft_rows
    from training.student_builder import build_student

    init = run_dir / "students" / "init"
    if not (init / "config.json").exists():
        rows = [row for path in data.values() for row in read_sft_rows(path)]
        corpus = [text for row in rows for text in (row["prompt"], row["completion"])]
        build_student(cfg.student, corpus, init, seed=cfg.run.seed)
    out = {"init": init}
    for name, path in data.items():
        target = run_dir / "students" / name
        if not (target / "config.json").exists():
            console.rule(f"training {name.upper()} ({STUDENT_DATA[name]})")
            run_training(run_dir / "config.resolved.yaml", [path], init, target, run_dir, f"train_{name}")
        out[name] = target
    return out


def run_doc(cfg: DocRunConfig, run_dir: Path | None = None, until: str | None = None) -> dict[str, Any]:
    """The whole Divide-or-Conquer experiment (or up to stage `until`, "samples"); prints the tables and the
    run directory."""
    from ray_jobs.teacher_services import teacher_services

    run_dir = run_dir or new_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir)
    console.print(f"run directory: [bold]{run_dir}")
    tracker = Tracker(run_dir, cfg.wandb, "doc", config=cfg.model_dump(mode="json"))
    started = time.perf_counter()
    try:
        with teacher_services(cfg, run_dir) as services:  # one limiter, cache and meter for every teacher call
            records = collect_teacher_samples(cfg, run_dir, tracker, services)
            if until == "samples":
                return {}
            students = train_doc_students(cfg, run_dir, write_student_data(cfg, run_dir, records))
            sections = evaluate_pipelines(cfg, run_dir, students, tracker, services)
        wall = time.perf_counter() - started
        flat = write_doc_results(cfg, run_dir, sections, tracker, wall)
    finally:
        tracker.finish()
    console.print((run_dir / "results.md").read_text())
    console.print(f"results: {run_dir / 'results.json'}  plot: {run_dir / 'results.png'}  wall time: {wall:.0f} s")
    return flat

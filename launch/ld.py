"""Logic Distillation, the order of its stages: function base + demonstrations -> students -> evaluation.

Each stage reads and writes only files under the run directory, so `generate`, `train` and
`evaluate` can run separately (even on other machines) and a rerun skips what is already there.
The data and evaluation stages live in `ray_jobs/` (ld_data.py, ld_evaluation.py); training is launched
from here (`launch/train_launcher.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from configs.loader import save_resolved
from configs.schema import RunConfig
from generation.storage.checksums import CHECKSUMS_NAME, seal_directory
from generation.storage.tracking import Tracker
from ray_jobs.ld_data import generate
from ray_jobs.teacher_services import teacher_services
from ray_jobs.ld_evaluation import evaluate
from ray_jobs.stages import StageError, console

METHOD_DATA = {"ld": "ld", "kd": "kd"}  # student -> shard prefix


def new_run_dir(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.run.output_dir) / f"{cfg.run.name}-{stamp}"


def _corpus(run_dir: Path) -> list[str]:
    from generation.storage.records import RawActionRecord, StageDecisionRecord
    from generation.storage.shards import read_records, shard_paths

    data = run_dir / "data"
    records = read_records(shard_paths(data, "ld"), StageDecisionRecord) + \
        read_records(shard_paths(data, "kd"), RawActionRecord)
    return [t for r in records for t in (r.prompt, r.completion)]


STUDENT_SETTINGS_NAME = "student_settings.json"


def record_student_settings(init: Path, student) -> None:
    """Write the `student` settings the initial student was built with next to it."""
    import json

    (init / STUDENT_SETTINGS_NAME).write_text(json.dumps(student.model_dump(mode="json"), sort_keys=True, indent=1))


def check_student_settings(init: Path, student) -> None:
    """Refuse to reuse an initial student built with other `student` settings (a rerun would otherwise
    fine-tune the old tokenizer and size and report them under the new config). Runs made before the
    settings were recorded are not checked."""
    import json

    path = init / STUDENT_SETTINGS_NAME
    if not path.exists():
        return
    built = json.loads(path.read_text())
    wanted = student.model_dump(mode="json")
    changed = {k: (built.get(k), wanted.get(k)) for k in sorted(set(built) | set(wanted)) if built.get(k) != wanted.get(k)}
    if changed:
        said = ", ".join(f"student.{k}: built with {old!r}, config asks for {new!r}" for k, (old, new) in changed.items())
        raise StageError(f"the students in {init.parent} were built with other settings ({said}). Use a new "
                         f"--run-dir, or delete {init.parent} to rebuild them (the demonstrations are kept)")


def train_students(cfg: RunConfig, run_dir: Path, methods: list[str]) -> dict[str, Path]:
    """Build the initial student once (tokenizer trained on the corpus), then fine-tune one per method."""
    from generation.storage.shards import shard_paths
    from launch.train_launcher import run_training
    from training.student_builder import build_student

    init = run_dir / "students" / "init"
    if not (init / "config.json").exists():
        build_student(cfg.student, _corpus(run_dir), init, seed=cfg.run.seed)
        record_student_settings(init, cfg.student)
    check_student_settings(init, cfg.student)
    out = {}
    for method in methods:
        target = run_dir / "students" / method
        if not (target / "config.json").exists():
            shards = shard_paths(run_dir / "data", METHOD_DATA[method])
            if not shards:
                raise StageError(f"no {method} training shards in {run_dir / 'data'}: run `generate` first")
            console.rule(f"training the {method.upper()} student")
            run_training(run_dir / "config.resolved.yaml", shards, init, target, run_dir, f"train_{method}")
        if not (target / CHECKSUMS_NAME).exists():
            seal_directory(target)  # evaluation verifies these before it loads the weights
        out[method] = target
    return out


def run_all(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """The whole pipeline; prints the results table and the run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir)
    console.print(f"run directory: [bold]{run_dir}")
    tracker = Tracker(run_dir, cfg.wandb, "pipeline", config=cfg.model_dump(mode="json"))
    try:
        started = time.perf_counter()
        with teacher_services(cfg, run_dir) as services:  # one limiter, cache and meter for every teacher call
            generate(cfg, run_dir, tracker, services)
            methods = list(dict.fromkeys(p.split("_")[0] for p in cfg.eval.policies if "_student" in p))
            if methods:
                train_students(cfg, run_dir, methods)
            results = evaluate(cfg, run_dir, tracker, services)
        tracker.log({"wall_time_s": time.perf_counter() - started})
    finally:
        tracker.finish()
    console.print((run_dir / "results.md").read_text())
    console.print(f"results: {run_dir / 'results.json'}  plot: {run_dir / 'results.png'}")
    console.print(f"run directory: [bold]{run_dir}")
    return results

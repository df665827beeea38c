"""Learn-to-Reason rounds end to end through the CLI, killed for real between rounds and resumed.

A tiny run (no warm-up, one arm, 2 rounds, a handful of questions) is started as its own process
group; when round 1's evaluation marker appears, the whole group is SIGKILLed. The same command
then resumes: finished stages are skipped (their outputs untouched), round 2 runs, and the results
(table, plot, results.json, offline W&B run) are there.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
# the quickstart trains in the CLI's process (launch.in_process), so a round costs seconds here
OVERRIDES = ["warmup.enabled=false", "task.train_questions=4", "task.heldout_questions=4",
             "task.warmup_questions=4", "rounds.num_rounds=2", "training.max_steps=1",
             "training.per_device_batch_size=4", "exam.samples=2", "exam.max_new_tokens=12",
             "exam.num_workers=1", "ablations.no_reflection=false", "ablations.no_tailoring=false",
             "ablations.one_round=false", "ray.num_cpus=1", "student.vocab_size=300", "student.preset=nano"]


def start(run_dir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    return subprocess.Popen([sys.executable, "-m", "launch.cli", "ltr", "configs/ltr_quickstart.yaml", *OVERRIDES,
                             "--run-dir", str(run_dir)], cwd=REPO, env=env, stdout=log.open("a"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_rounds_resume_after_a_kill_between_rounds(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "ltr.log"
    marker = run_dir / "stages" / "eval-full-r1.json"
    proc = start(run_dir, log)
    deadline = time.monotonic() + 600
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert marker.exists(), log.read_text()[-4000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Ray workers and any training process
    proc.wait()
    assert not (run_dir / "stages" / "train-full-r2.json").exists() and not (run_dir / "results.json").exists()
    round1 = run_dir / "students" / "full-r1" / "model.safetensors"
    round1_mtime = round1.stat().st_mtime_ns

    killed_at = len(log.read_text())
    from wandb_reader import find_runs

    killed_runs = set(find_runs(run_dir / "wandb"))  # cut off by the kill: they never get an exit record
    resumed = start(run_dir, log)
    assert resumed.wait(timeout=600) == 0, log.read_text()[-4000:]
    second = log.read_text()[killed_at:]
    for stage in ("eval-r0", "exam-r0", "feedback-r0-tailored", "train-full-r1", "eval-full-r1"):
        assert f"stage {stage}: already done, skipped" in second
    assert "training full-r1" not in second and "training full-r2" in second
    assert round1.stat().st_mtime_ns == round1_mtime  # round 1's student was not retrained

    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["heldout_accuracy"]["full"]) == {"0", "1", "2"}
    history = results["rounds"]["full"]
    assert [h["round"] for h in history] == [0, 1, 2] and history[2]["exam"] == "full-r1"
    assert (run_dir / "results.png").stat().st_size > 1000
    assert "| round | full (tailored + reflection) |" in (run_dir / "results.md").read_text()
    # round 2's data came from the exam that round 1's student took
    from generation.ltr.records import ExamRecord
    from generation.storage.shards import read_records
    from ray_jobs.ltr_run import training_rows

    exam = read_records([run_dir / "exams" / "full-r1.parquet"], ExamRecord)
    assert {r.checkpoint for r in exam} == {str(run_dir / "students" / "full-r1")}

    rows = training_rows(run_dir)
    assert {r.exam for r in rows} == {"r0", "full-r1"} and {r.round for r in rows} == {1, 2}
    _check_wandb(run_dir, killed_runs)


def _check_wandb(run_dir: Path, killed_runs: set) -> None:
    from wandb_reader import find_runs, wait_until_finished

    runs = [wait_until_finished(path) for path in find_runs(run_dir / "wandb") if path not in killed_runs]
    [ltr] = [r for r in runs if "rounds" in r.config]  # the resumed pipeline run (training jobs have their own)
    results = json.loads((run_dir / "results.json").read_text())
    assert ltr.summary["full/round2"] == results["heldout_accuracy"]["full"]["2"]

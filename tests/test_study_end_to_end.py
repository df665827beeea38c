"""A tiny scaling study through the command line: real generation, DeepSpeed training and evaluation of
each trial on Ray, one trial failing (a broken checkpoint) while the others finish, the report, the
study's W&B run, and a rerun that skips every finished trial."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CLI = [sys.executable, "-m", "launch.cli", "study"]
REPO = Path(__file__).resolve().parents[1]


def _write_study(tmp_path: Path) -> Path:
    broken = tmp_path / "broken-ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # looks like a checkpoint, cannot be loaded
    study = {
        "study": {"name": "e2e", "output_dir": str(tmp_path / "studies"), "eval_teacher": False},
        "base": {"config": str(REPO / "configs" / "quickstart.yaml"), "overrides": {
            "generation": {"episodes_per_unit": 4, "progress": False},
            "training": {"max_steps": 2, "per_device_batch_size": 4, "log_every": 1, "save_every": None},
            "eval": {"episodes": 2}}},
        "grid": {"student": ["nano", str(broken)], "method": ["ld"], "data_size": [4], "seed": [0]},
        "resources": {"num_processes": 1},
        "ray": {"num_cpus": 2},
        "wandb": {"mode": "offline"},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.mark.slow
def test_tiny_study_reports_survives_a_failed_trial_and_resumes(tmp_path):
    config = _write_study(tmp_path)
    study_dir = tmp_path / "studies" / "e2e"
    first = subprocess.run([*CLI, str(config)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]  # 1: some trial failed

    rows = (study_dir / "study.csv").read_text().splitlines()
    assert rows[0].startswith("name,method,student,data_size,seed,success_rate")
    assert [r.split(",")[0] for r in rows[1:]] == ["ld-nano-d4-s0"]
    result = json.loads((study_dir / "trials" / "ld-nano-d4-s0" / "result.json").read_text())
    assert result["parameters"] > 0 and result["train_flops"] > 0 and result["tokens_per_s"] > 0
    assert result["teacher_input_tokens"] > 0 and result["episodes_generated"] == 4 and result["episodes"] == 2
    error = json.loads((study_dir / "trials" / "ld-broken_ckpt-d4-s0" / "error.json").read_text())
    assert error["error"] and error["log"].endswith("train_ld.log")
    report = (study_dir / "study.md").read_text()
    assert "## Failed trials" in report and "ld-broken_ckpt-d4-s0" in report and "## Power law" in report
    for plot in ("quality_vs_parameters", "quality_vs_compute", "throughput_vs_size", "teacher_cost_vs_data"):
        assert (study_dir / f"{plot}.png").stat().st_size > 1000
    _check_study_wandb_run(study_dir)

    train_log = study_dir / "trials" / "ld-nano-d4-s0" / "logs" / "train_ld.log"
    log_size = train_log.stat().st_size
    again = subprocess.run([*CLI, str(config)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert again.returncode == 1
    assert "skipped 1 finished trial(s)" in again.stdout and "demonstrations: 4 episodes" in again.stdout
    assert train_log.stat().st_size == log_size  # the finished trial did not train again
    assert "trial ld-broken_ckpt-d4-s0 failed" in again.stdout  # a failed trial is retried


def _check_study_wandb_run(study_dir: Path) -> None:
    from wandb_reader import find_runs, wait_until_finished

    [run] = [wait_until_finished(p) for p in find_runs(study_dir / "wandb")]
    assert "trials" in run.tables and "quality_vs_parameters" in run.images
    assert run.summary["trials_finished"] == 1 and run.summary["trials_failed"] == 1
    assert run.config["study"]["name"] == "e2e"

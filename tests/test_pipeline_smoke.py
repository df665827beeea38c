"""The whole pipeline from the command line, with a few episodes and steps: every artefact is there."""

import json
import subprocess
import sys

import pytest

from generation.storage.tracking import read_side_log

CLI = [sys.executable, "-m", "launch.cli"]


def test_wrong_key_fails_fast_with_suggestion(tmp_path):
    proc = subprocess.run([*CLI, "run", "configs/quickstart.yaml", "eval.episods=5", "--run-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown config key 'eval.episods'; did you mean 'eval.episodes'?" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_train_without_run_dir_is_refused():
    proc = subprocess.run([*CLI, "train"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--run-dir" in proc.stderr


@pytest.mark.slow
def test_pipeline_end_to_end_smoke(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["generation.train_episodes=6", "generation.episodes_per_unit=3", "eval.episodes=6",
                 "training.max_steps=6", "training.num_processes=2", "training.log_every=1", "ray.num_cpus=2",
                 "training.per_device_batch_size=4"]
    proc = subprocess.run([*CLI, "run", "configs/quickstart.yaml", *overrides, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"run directory: {run_dir}" in proc.stdout
    assert "| policy | success_rate |" in proc.stdout

    results = json.loads((run_dir / "results.json").read_text())
    for policy in ("teacher", "ld_student", "kd_student", "majority"):
        m = results[policy]
        assert m["episodes"] == 6
        assert 0.0 <= m["success_rate"] <= 1.0 and 0.0 <= m["invalid_rate"] <= 1.0
    assert results["teacher"]["success_rate"] >= 0.5
    assert (run_dir / "results.png").stat().st_size > 1000
    assert "eval:\n  episodes: 6" in (run_dir / "config.resolved.yaml").read_text()

    for job in ("train_ld", "train_kd"):  # training curves reached the side log on rank 0 only
        steps = [row["step"] for row in read_side_log(run_dir, job) if "loss" in row]
        assert steps == sorted(set(steps)) and steps[-1] == 6
    pipeline_log = read_side_log(run_dir, "pipeline")
    assert any("generation/stage_records" in row for row in pipeline_log)
    assert (run_dir / "metrics" / "pipeline-sample_decisions.json").exists()
    _check_wandb_runs(run_dir)


def _check_wandb_runs(run_dir):
    """The real offline W&B runs, read back: config, generation counts, curves, eval metrics, table."""
    from wandb_reader import find_runs, wait_until_finished

    runs = [wait_until_finished(path) for path in find_runs(run_dir / "wandb")]
    assert len(runs) == 3  # one per job: pipeline, train_ld, train_kd
    [pipeline] = [r for r in runs if "eval" in r.config]
    assert pipeline.config["eval"]["episodes"] == 6
    assert pipeline.metric("generation/stage_records")[0] > 0
    assert 0.0 <= pipeline.summary["ld_student/success_rate"] <= 1.0
    assert "sample_decisions" in pipeline.tables and "results_plot" in pipeline.images
    trainers = [r for r in runs if r is not pipeline]
    for run in trainers:
        losses = run.metric("loss")
        assert len(losses) == 6 and losses[-1] < losses[0]

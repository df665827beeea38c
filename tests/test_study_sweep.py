"""Trial scheduling: a failed trial is recorded while the others finish, and a rerun skips finished
trials (real local Ray cluster); the same markers for one trial run in-process; the SLURM array."""

import json

import pytest

from configs.loader import validate_config
from configs.schema import RayConfig
from configs.study_schema import StudyConfig
from ray_jobs.study import plan_study
from launch.study_slurm import write_slurm
from ray_jobs.sweep import ERROR_NAME, RESULT_NAME, SweepItem, finished_result, run_local, run_sweep


def _make_body():
    def body(payload):
        """Counts its calls in the trial folder, then fails or doubles x. (Nested: Ray ships it by value,
        as workers cannot import test modules.)"""
        from pathlib import Path

        calls = Path(payload["folder"]) / "calls"
        calls.parent.mkdir(parents=True, exist_ok=True)
        calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
        if payload["fail"]:
            raise ValueError(f"boom in {Path(payload['folder']).name}")
        return {"x2": payload["x"] * 2}

    return body


_body = _make_body()


def _items(tmp_path, failing):
    return [SweepItem(name, tmp_path / name, {"folder": str(tmp_path / name), "x": i, "fail": name in failing},
                      num_cpus=1, log_path=tmp_path / name / "trial.log") for i, name in enumerate("abc")]


def _calls(tmp_path, name):
    return int((tmp_path / name / "calls").read_text())


@pytest.mark.slow
def test_failure_is_recorded_others_finish_and_a_rerun_skips_finished(tmp_path):
    import ray

    seen = []
    try:
        outcome = run_sweep(_items(tmp_path, {"b"}), _body, RayConfig(num_cpus=2),
                            on_done=lambda name, result, error: seen.append((name, error is None)))
        assert outcome.finished == {"a": {"x2": 0}, "c": {"x2": 4}} and list(outcome.failed) == ["b"]
        assert sorted(seen) == [("a", True), ("b", False), ("c", True)]
        error = json.loads((tmp_path / "b" / ERROR_NAME).read_text())
        assert error["error"] == "ValueError: boom in b" and "raise ValueError" in error["traceback"]
        assert error["log"] == str(tmp_path / "b" / "trial.log")
        assert not (tmp_path / "b" / RESULT_NAME).exists()

        again = run_sweep(_items(tmp_path, set()), _body, RayConfig(num_cpus=2))  # b's fault fixed
        assert sorted(again.skipped) == ["a", "c"] and again.finished == {"b": {"x2": 2}}
        assert [_calls(tmp_path, n) for n in "abc"] == [1, 2, 1]  # finished trials never ran twice
        assert not (tmp_path / "b" / ERROR_NAME).exists() and finished_result(tmp_path / "b") == {"x2": 2}

        nothing = run_sweep(_items(tmp_path, set()), _body, RayConfig(num_cpus=2))
        assert sorted(nothing.skipped) == ["a", "b", "c"] and not nothing.finished
    finally:
        ray.shutdown()


def test_one_trial_in_process_writes_the_same_markers(tmp_path):
    a, b, _ = _items(tmp_path, {"b"})
    assert run_local(a, _body) == {"x2": 0} and finished_result(a.folder) == {"x2": 0}
    assert run_local(b, _body) is None
    assert "boom in b" in json.loads((b.folder / ERROR_NAME).read_text())["error"]


def test_a_torn_result_marker_means_the_trial_runs_again(tmp_path):
    (tmp_path / RESULT_NAME).write_text('{"x2": ')
    assert finished_result(tmp_path) is None


def test_slurm_array_covers_unfinished_trials_with_their_resources(tmp_path):
    study = validate_config({"study": {"name": "s", "output_dir": str(tmp_path)},
                             "grid": {"student": ["nano", "tiny"], "method": ["ld", "kd"]},
                             "resources": {"num_processes": 2, "gpus": 2, "cpus": 8},
                             "slurm": {"partition": "gpu", "max_parallel": 3, "extra_sbatch": ["--account=lab"]}},
                            StudyConfig)
    plan = plan_study(study)
    done = plan.trial_dir("ld-nano-d240-s0")
    done.mkdir(parents=True)
    (done / RESULT_NAME).write_text("{}")
    paths = write_slurm(plan)
    todo = (tmp_path / "s" / "slurm" / "trials.txt").read_text().split()
    assert todo == ["kd-nano-d240-s0", "ld-tiny-d240-s0", "kd-tiny-d240-s0"]
    array = paths["trials"].read_text()
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --cpus-per-task=8", "#SBATCH --gpus-per-task=2",
                 "#SBATCH --partition=gpu", "#SBATCH --account=lab", '--trial "$TRIAL"'):
        assert line in array
    assert "--prepare-only" in paths["prepare"].read_text() and "--report-only" in paths["report"].read_text()
    submit = paths["submit"].read_text()
    assert "--dependency=afterok:$prepare trials.sbatch" in submit and "afterany:$trials report.sbatch" in submit

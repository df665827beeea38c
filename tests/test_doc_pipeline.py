"""`logic-distill doc` end to end on a tiny budget: samples, one trained decomposer, pipelines, artefacts."""

import json
import subprocess
import sys

import pytest

from generation.storage.tracking import read_side_log

CLI = [sys.executable, "-m", "launch.cli"]


def test_doc_config_errors_are_clear(tmp_path):
    proc = subprocess.run([*CLI, "doc", "configs/doc_quickstart.yaml", "students=[sd_t]", "--run-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "eval pipelines need the student(s) ['sd_r', 'se_a', 'se_t']" in proc.stderr


@pytest.mark.slow
def test_doc_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["task.train_questions=30", "task.samples_per_question=2", "task.eval_questions=6",
                 "students=[sd_r]", "eval.pipelines=[single_stage, teacher>teacher, sd_r>teacher]",
                 "eval.cross_pipelines=[teacher>teacher, sd_r>teacher]", "training.max_steps=3",
                 "training.num_processes=1", "training.log_every=1", "eval.num_workers=1", "ray.num_cpus=2"]
    proc = subprocess.run([*CLI, "doc", "configs/doc_quickstart.yaml", *overrides, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    in_domain = "kbqa (in-domain)"
    cross = "arithmetic (cross-domain: decomposers trained on kbqa)"
    assert results["_run"]["sections"] == [in_domain, cross]
    for name in ("single_stage", "teacher>teacher", "sd_r>teacher"):
        row = results[f"{in_domain}/{name}"]
        assert row["questions"] == 6 and 0.0 <= row["accuracy"] <= 1.0 and row["metric"] == "f1"
    assert results[f"{cross}/sd_r>teacher"]["metric"] == "exact_match"
    single, two_stage, sd_r = (results[f"{in_domain}/{n}"] for n in ("single_stage", "teacher>teacher", "sd_r>teacher"))
    # cost accounting: the teacher pays for decomposing only where it decomposes; the student's tokens are apart
    assert two_stage["decomposition_usd_per_1k_q"] > 0 and sd_r["decomposition_usd_per_1k_q"] == 0
    assert two_stage["teacher_usd_per_1k_q"] > max(single["teacher_usd_per_1k_q"], sd_r["teacher_usd_per_1k_q"])
    assert sd_r["student_in_per_q"] > 0 and two_stage["student_in_per_q"] == 0
    samples = json.loads((run_dir / "metrics" / "doc-sample_pipelines.json").read_text())
    assert samples["columns"][0] == "pipeline" and samples["rows"]
    assert "| pipeline | accuracy |" in (run_dir / "results.md").read_text()
    assert (run_dir / "results.png").stat().st_size > 1000
    assert (run_dir / "data" / "sd_r.parquet").exists() and (run_dir / "students" / "sd_r" / "config.json").exists()
    logged = {k for row in read_side_log(run_dir, "doc") for k in row}
    assert "samples/sd_r_kept" in logged and "eval/kbqa/sd_r>teacher/accuracy" in logged
    assert [row["step"] for row in read_side_log(run_dir, "train_sd_r") if "loss" in row][-1] == 3
    assert list((run_dir / "wandb").glob("offline-run-*"))

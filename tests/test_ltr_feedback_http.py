"""Learn-to-Reason feedback over real HTTP (tests/teacher_server.py answering like the built-in tutor).

- Under `teacher.limits` below the server's own rate, the feedback job never meets a 429, and its rows are
  exactly those of the offline expert backend (the same batch without limits does meet 429s).
- `kill -9` of `logic-distill ltr` mid-way through the warm-up's teacher rationales (the server holding
  every new request), then the same command: no row lost, none duplicated (against the offline expert's
  rows for the same requests), no prompt answered twice by the server.
Run: .venv/bin/pytest tests/test_ltr_feedback_http.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs.loader import load_config
from configs.ltr_schema import LtrRunConfig
from configs.teacher_schema import TeacherConfig
from generation.datasets.arithmetic import ArithmeticDifficulty, make_problem
from generation.ltr.exam import grade
from generation.ltr.feedback import build_requests, collect, feedback_asks, ltr_teacher_service, warmup_requests
from generation.ltr.questions import load_splits
from generation.ltr.records import ExamRecord, LtrTrainingRecord
from generation.storage.shards import Manifest, read_records
from ray_jobs.ltr_feedback import LtrTeacher, feedback_shards
from driver_helpers import kill_when_committed
from teacher_server import running_server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "ltr_quickstart.yaml"
HTTP = ["teacher.backend=openai", "teacher.model=m", "teacher.timeout_s=5", "teacher.backoff_initial_s=0.05",
        "teacher.backoff_max_s=0.2"]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def synthetic_exam(questions: int) -> list[ExamRecord]:
    """Two samples per question; two questions in three have a wrong one (its last step off by one)."""
    difficulty = ArithmeticDifficulty(min_steps=1, max_steps=2, max_base=9, shapes=("chain",),
                                      kinds=("more", "fewer"))
    rows = []
    for seed in range(questions):
        problem = make_problem(seed, difficulty)
        right = problem.rationale()
        wrong = right.replace(f"The answer is {problem.answer}.", f"The answer is {problem.answer + 1}.")
        for k, rationale in enumerate([wrong if seed % 3 else right, right]):
            predicted, correct = grade(rationale, str(problem.answer))
            rows.append(ExamRecord(exam="r0", round=0, question_id=f"q{seed}", sample_id=f"r0/q{seed}/s{k}",
                                   question=problem.question, gold_answer=str(problem.answer), rationale=rationale,
                                   predicted=predicted, correct=correct, temperature=0.7, checkpoint="students/x"))
    return rows


def offline_rows(items, round_index: int, exam: str, stage: str) -> list[LtrTrainingRecord]:
    """The fault-free reference: the offline expert backend through the service, no shared services."""
    with ltr_teacher_service(TeacherConfig()) as service:
        rows, rejected, _ = collect(items, service.ask(feedback_asks(items, stage)), round_index, exam)
    assert not rejected
    return rows


def stored_rows(folder: Path) -> list[LtrTrainingRecord]:
    return read_records(feedback_shards(folder), LtrTrainingRecord)


def test_feedback_under_the_limits_meets_no_429_and_writes_the_tutors_rows(ray_cluster, tmp_path):
    items = build_requests(synthetic_exam(24), tailored=True, rationales=2, negatives_per_question=1,
                           include_correct=True)
    reference = offline_rows(items, 1, "r0", "ltr_feedback")
    # the server takes 10 requests a second; the limiter grants 8 (minus headroom) across the cluster
    with running_server(reply_fn="expert_reply:ltr_tutor", rpm=10, rate_window_s=1.0, latency_s=0.02) as server:
        overrides = [*HTTP, f"teacher.base_url={server.url}", "teacher.concurrency=8", "feedback.requests_per_unit=8"]
        limited = load_config(QUICKSTART, [*overrides, "teacher.limits.requests_per_minute=480",
                                           "teacher.limits.window_s=1"], LtrRunConfig)
        folder = tmp_path / "limited" / "data" / "feedback" / "r0-tailored"
        started = time.monotonic()
        with LtrTeacher(limited, tmp_path / "limited") as teacher:
            summary = teacher.write_feedback(items, 1, "r0", folder, "ltr_feedback")
            granted = teacher.services.limiter_stats()
        wall_s = time.monotonic() - started
        stats = server.stats()
        print(f"\nwith limits: {len(items)} requests in {wall_s:.1f} s, server {stats}, limiter {granted}")
        assert stats.get("rate_limited", 0) == 0 and stats["ok"] == stats["requests"] == len(items)
        assert stored_rows(folder) == reference
        assert (summary["units"], summary["teacher_requests"], summary["rejected"]) == (3, len(items), 0)
        assert summary["train_rows"] == len(reference)

        # the same command again: every unit committed, nothing asked
        with LtrTeacher(limited, tmp_path / "limited") as teacher:
            assert teacher.write_feedback(items, 1, "r0", folder, "ltr_feedback") == summary
        assert server.stats()["requests"] == len(items)

        # without the limiter the same batch does meet the server's limit: the check above is not vacuous
        server.reset(reply_fn="expert_reply:ltr_tutor", rpm=10, rate_window_s=1.0, latency_s=0.02)
        unlimited = load_config(QUICKSTART, overrides, LtrRunConfig)
        with LtrTeacher(unlimited, tmp_path / "unlimited") as teacher:
            teacher.write_feedback(items, 1, "r0", tmp_path / "unlimited" / "fb", "ltr_feedback")
        print(f"without limits: server {server.stats()}")
        assert server.stats()["rate_limited"] > 0
        assert stored_rows(tmp_path / "unlimited" / "fb") == reference


WARMUP_QUESTIONS, PER_UNIT = 40, 4
TINY_RUN = ["task.warmup_questions=40", "warmup.rationales_per_question=2", f"feedback.requests_per_unit={PER_UNIT}",
            "teacher.concurrency=4", "task.train_questions=4", "task.heldout_questions=4", "rounds.num_rounds=1",
            "training.max_steps=1", "training.per_device_batch_size=4", "exam.samples=2", "exam.max_new_tokens=12",
            "exam.num_workers=1", "ablations.no_reflection=false", "ablations.no_tailoring=false",
            "ablations.one_round=false", "ray.num_cpus=1", "student.vocab_size=300", "student.preset=nano",
            "wandb.mode=disabled"]


def _ltr_command(server_url: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "launch.cli", "ltr", str(QUICKSTART), *HTTP, f"teacher.base_url={server_url}",
            *TINY_RUN, "--run-dir", str(run_dir)]


def test_kill_minus_nine_mid_feedback_then_the_same_command_loses_and_repeats_nothing(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    warmup = run_dir / "data" / "feedback" / "warmup-plain"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    # latency keeps a unit ~0.4 s long, so the kill lands with units still to go
    with running_server(reply_fn="expert_reply:ltr_tutor", latency_s=0.4) as server:
        # half the new requests wait: the unit in progress is stuck with some of its answers paid for
        committed_before = kill_when_committed(_ltr_command(server.url, run_dir), log, warmup, server, at_least=1,
                                               hang_fraction=0.5, cwd=REPO, env=env)
        answered_before = server.stats()["ok"]
        assert 1 <= committed_before < WARMUP_QUESTIONS // PER_UNIT, log.read_text()[-2000:]

        server.set_faults(hang_fraction=0.0)
        second = subprocess.run(_ltr_command(server.url, run_dir), cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=600)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        answers = server.answered_per_prompt()

    print(f"\ncommitted before the kill: {committed_before} units ({committed_before * PER_UNIT} requests), "
          f"answered {answered_before}; "
          f"after the resume: {sum(answers.values())} answers, most per prompt {max(answers.values())}")
    repeated = {h: n for h, n in answers.items() if n > 1}
    assert not repeated, f"{len(repeated)} prompts were answered more than once"
    assert sum(answers.values()) > answered_before

    cfg = load_config(QUICKSTART, TINY_RUN, LtrRunConfig)
    splits = load_splits(cfg.task)
    warm_items = warmup_requests(splits["warmup"], 2)
    reference = offline_rows(warm_items, 0, "warmup", "ltr_warmup")
    rows = stored_rows(warmup)
    assert sorted(Manifest(warmup).entries) == list(range(WARMUP_QUESTIONS // PER_UNIT))
    assert rows == reference  # nothing lost, nothing twice, in order
    # what was answered but not committed before the kill came from the cache, nothing else did
    warmup_stage = json.loads((run_dir / "stages" / "warmup.json").read_text())
    assert warmup_stage["teacher_cache_hits"] == answered_before - committed_before * PER_UNIT
    # round 1 asked the server too: its tailored rows are the tutor's for that exam
    exam = read_records([run_dir / "exams" / "r0.parquet"], ExamRecord)
    fb = cfg.feedback
    items = build_requests(exam, True, fb.rationales_per_question, fb.negatives_per_question, fb.include_correct)
    assert stored_rows(run_dir / "data" / "feedback" / "r0-tailored") == offline_rows(items, 1, "r0", "ltr_feedback")
    assert len(answers) == len(warm_items) + len(items)  # every request answered once: warm-up + round 1

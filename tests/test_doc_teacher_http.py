"""Divide-or-Conquer over real HTTP against the fault-injecting test server, through the one teacher service.

- The cluster-wide rate limiter keeps DoC sampling and a teacher-solved pipeline under the server's limit
  (no 429), and the results are the in-process expert's.
- `kill -9` of `logic-distill doc ... --until samples` mid-sampling, then the same command: no sample lost,
  none duplicated, every prompt answered exactly as often as the method asks it (k draws of a
  decomposition prompt, one answer per solving prompt), nothing asked twice.

The server answers like the expert (`expert_reply:doc_expert`: the n-th answer to a prompt is sample n).
Run: .venv/bin/pytest tests/test_doc_teacher_http.py
"""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from configs.doc_schema import DocRunConfig
from configs.loader import load_config
from generation.doc import prompts as doc
from generation.storage.shards import Manifest
from generation.teachers.base import prompt_hash
from driver_helpers import kill_then_rerun
from teacher_server import running_server

pytestmark = pytest.mark.slow
K = 2  # decompositions sampled per question


def _overrides(server_url: str, questions: int, per_unit: int) -> list[str]:
    # teacher.timeout_s stays long (60 s): a request held by the server past the kill must not be retried by a
    # Ray worker of the killed run that has not yet noticed its raylet is gone (an answer nobody receives)
    return ["teacher.backend=openai", f"teacher.base_url={server_url}", "teacher.model=m",
            "teacher.backoff_initial_s=0.05", "teacher.backoff_max_s=0.5", "task.train_domain=kbqa",
            "task.cross_domain=arithmetic", f"task.train_questions={questions}", f"task.samples_per_question={K}",
            f"task.questions_per_unit={per_unit}", "eval.num_workers=2", "ray.num_cpus=2", "wandb.mode=disabled"]


def _config(server_url: str, questions: int, per_unit: int, *more: str) -> DocRunConfig:
    return load_config(None, [*_overrides(server_url, questions, per_unit), *more], DocRunConfig)


def _expert(cfg: DocRunConfig):
    from generation.doc.worker import doc_teacher_service

    return doc_teacher_service(cfg.model_copy(update={"teacher": DocRunConfig().teacher}))


def _reference(cfg: DocRunConfig, items) -> list:
    """The same questions sampled by the in-process expert teacher (no Ray, no HTTP)."""
    from generation.doc.samples import collect_samples

    with _expert(cfg) as service:
        return collect_samples(items, K, cfg.task.sample_temperature, cfg.task.max_sub_questions, service)


def _content(records) -> list[tuple]:
    """What a sample says, whichever draw number it got (the server numbers draws in arrival order)."""
    return sorted((r.uid, r.decomposition, tuple(r.sub_questions), r.parsed, r.solution, r.predicted, r.solved)
                  for r in records)


def _expected_answers(reference, max_sub_questions: int) -> Counter:
    """Prompt hash -> how often the method asks it: k draws per decomposition prompt, one answer per solve."""
    want = Counter(prompt_hash(doc.decomposition_messages(r.question, max_sub_questions)) for r in reference)
    for messages in {str(m): m for m in (doc.solving_messages(r.question, r.sub_questions)
                                         for r in reference if r.parsed)}.values():
        want[prompt_hash(messages)] = 1
    return want


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def _sample_and_evaluate(cfg: DocRunConfig, out_dir, items, eval_items):
    from ray_jobs.doc import run_doc_jobs
    from ray_jobs.doc_samples import read_samples, run_sampling
    from ray_jobs.teacher_services import TeacherServices

    with TeacherServices(cfg.teacher, out_dir) as services:
        summary = run_sampling(cfg, out_dir, items, services)
        spec = {"decomposer": "teacher", "solver": "teacher"}
        pipeline = {}
        if eval_items:
            pipeline, _ = run_doc_jobs(cfg, out_dir, {"two_stage": (spec, eval_items)}, "evaluation", services.hooks)
        return summary, read_samples(out_dir), pipeline.get("two_stage", []), services.limiter_stats()


def test_doc_sampling_and_a_teacher_pipeline_stay_under_the_servers_rate_limit(ray_cluster, tmp_path):
    from generation.doc.pipelines import run_pipeline
    from ray_jobs.doc_stages import doc_items

    faults = dict(reply_fn="expert_reply:doc_expert", rpm=15, rate_window_s=1.0, latency_s=0.02)
    with running_server(**faults) as server:
        cfg = _config(server.url, 10, 3, "task.eval_questions=6", "teacher.limits.requests_per_minute=720",
                      "teacher.limits.window_s=1")  # 12/s against the server's 15/s
        items, eval_items = doc_items(cfg, "kbqa", "train"), doc_items(cfg, "kbqa", "eval")
        summary, samples, two_stage, limiter = _sample_and_evaluate(cfg, tmp_path / "limited", items, eval_items)
        limited = server.stats()

        # the same sampling without the limiter meets the server's 429s (what the limiter spared)
        server.reset(**faults)
        unlimited_cfg = _config(server.url, 10, 3)
        _sample_and_evaluate(unlimited_cfg, tmp_path / "unlimited", items, [])
        unlimited = server.stats()
    print(f"server 429s: with teacher.limits {limited.get('rate_limited', 0)}, without "
          f"{unlimited.get('rate_limited', 0)}; answered {limited['ok']}")
    assert limited.get("rate_limited", 0) == 0 and unlimited["rate_limited"] > 0
    assert limiter["limiter_granted"] == limited["requests"]
    assert summary["units"] == 4 and summary["samples"] == len(samples) == K * len(items)
    assert summary["rejections"] == 0 and summary["teacher_api_calls"] + summary["teacher_cache_hits"] > 0

    reference = _reference(cfg, items)
    assert _content(samples) == _content(reference)
    with _expert(cfg) as service:
        expected = run_pipeline({"decomposer": "teacher", "solver": "teacher"}, eval_items, service, None,
                                cfg.task.max_sub_questions)
    fields = ("uid", "sub_questions", "solution", "predicted", "score", "decomposition_valid")
    assert sorted(tuple(str(r[f]) for f in fields) for r in two_stage) == \
        sorted(tuple(str(r[f]) for f in fields) for r in expected)
    assert all(r["teacher_cost_usd"] == 0 and r["teacher_input_tokens"] > 0 for r in two_stage)


def _command(server_url: str, run_dir) -> list[str]:
    return [sys.executable, "-m", "launch.cli", "doc", "configs/doc_quickstart.yaml",
            *_overrides(server_url, QUESTIONS, PER_UNIT), "--until", "samples", "--run-dir", str(run_dir)]


QUESTIONS, PER_UNIT = 16, 2


def test_kill_minus_nine_mid_sampling_then_the_same_command_loses_and_repeats_nothing(tmp_path):
    from ray_jobs.doc_stages import doc_items
    from ray_jobs.doc_samples import read_samples

    run_dir = tmp_path / "run"
    data_dir = run_dir / "data"
    with running_server(reply_fn="expert_reply:doc_expert", latency_s=0.4) as server:  # units take seconds
        command = _command(server.url, run_dir)
        done_before, answered_before, answers = kill_then_rerun(command, tmp_path / "first.log", data_dir, server,
                                                                at_least=1, units=QUESTIONS // PER_UNIT)

    cfg = load_config(run_dir / "config.resolved.yaml", [], DocRunConfig)
    items = doc_items(cfg, "kbqa", "train")
    reference = _reference(cfg, items)
    samples = read_samples(data_dir)
    print(f"units committed before the kill {done_before}/{QUESTIONS // PER_UNIT}; server answers before "
          f"{answered_before}, after the resume {sum(answers.values())}; most answers of one prompt "
          f"{max(answers.values())}")
    assert len({(r.uid, r.sample) for r in samples}) == len(samples) == K * QUESTIONS  # none lost, none twice
    assert _content(samples) == _content(reference)
    assert sum(answers.values()) > answered_before  # the resume asked for what was never answered
    assert Counter(answers) == _expected_answers(reference, cfg.task.max_sub_questions)  # and nothing twice
    resumed = [Manifest(data_dir).entries[i]["usage"] for i in Manifest(data_dir).entries]
    assert sum(u["cache_hits"] for u in resumed) > 0  # units cut short replayed their paid answers

"""The generation job on a real local Ray cluster against the test server, through every fault.

Each run must end with exactly the records of the in-process expert teacher (tests/generation_fixtures.py):
faults may cost retries and re-asks, never a record. Run: .venv/bin/pytest tests/test_generation_faults.py
"""

from __future__ import annotations

import shutil

import pytest

from configs.tracking_schema import WandbConfig
from generation.storage.shards import MANIFEST_NAME
from generation.storage.tracking import Tracker, read_side_log
from generation_fixtures import assert_same_records, function_base, http_config, reference_records, rejections
from teacher_server import GARBAGE_REPLY, running_server

pytestmark = pytest.mark.slow
SEEDS = list(range(6))


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def base_and_reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("base")
    base_path = function_base(http_config("http://unused"), directory)
    return base_path, reference_records(base_path, SEEDS, per_task=3)


def test_every_fault_kind_is_survived_with_the_exact_record_set(ray_cluster, base_and_reference, tmp_path):
    from ray_jobs.generate import run_generation

    base_path, reference = base_and_reference
    faults = dict(rate_limit_first=3, retry_after_s=1, fail_first=4, fail_status=503, hang_first=2,
                  malformed_first=2, garbage_first=3, truncate_first=3, latency_s=0.01)
    with running_server(reply_fn="expert_reply:pursuit_expert", **faults) as server:
        # enough re-asks for one request to meet every garbage, truncated and garbled reply in a row
        cfg = http_config(server.url, "teacher.timeout_s=1", "generation.max_reasks=8")
        summary = run_generation(cfg, base_path, tmp_path / "data", SEEDS)
        stats = server.stats()
        assert (stats["rate_limited"], stats["server_error"], stats["hung"], stats["malformed"], stats["garbage"],
                stats["truncated"]) == (3, 4, 0, 2, 3, 3)  # the 2 hung requests are still hanging: timed out
        assert_same_records(tmp_path / "data", reference)
        assert summary["episodes"] == 6 and summary["rejections"] == 0
        # garbage and truncated replies were re-asked with a reason; garbled bodies asked again
        assert summary["teacher_reasks"] == 3 + 3 + 2
        errors = summary["teacher_errors_by_kind"]
        kinds = ("rate_limited", "server_error", "timeout", "bad_response")
        assert tuple(errors[k] for k in kinds) == (3, 4, 2, 2)
        assert summary["teacher_api_calls"] == stats["requests"]
        billed = summary["billed_by_model"]["m"]["requests"]
        assert billed == stats["ok"] + stats["garbage"] + stats["truncated"]  # every answered request, once

        # Lose every output but keep the cache: the rerun rebuilds the same records without asking the server.
        for path in (tmp_path / "data").iterdir():
            if path.name != "teacher_cache.sqlite" and not path.name.startswith("teacher_cache.sqlite-"):
                path.unlink() if path.is_file() else shutil.rmtree(path)
        again = run_generation(cfg, base_path, tmp_path / "data", SEEDS)
        assert server.stats()["requests"] == stats["requests"]
        assert again["teacher_cache_hits"] == again["teacher_requests"] + again["teacher_cache_hits"] > 0
        assert_same_records(tmp_path / "data", reference)

        # And with the manifest intact, a rerun has nothing to do.
        assert run_generation(cfg, base_path, tmp_path / "data", SEEDS)["units"] == 2
        assert (tmp_path / "data" / MANIFEST_NAME).read_text().count("\n") == 2


def test_replies_still_bad_after_every_reask_become_rejections(ray_cluster, base_and_reference, tmp_path):
    from ray_jobs.generate import run_generation

    base_path, _ = base_and_reference
    # one actor, one task of 2 episodes: the first stage asks 2 requests, then re-asks both twice
    with running_server(reply_fn="expert_reply:pursuit_expert", garbage_first=6) as server:
        cfg = http_config(server.url, "generation.num_actors=1", "generation.episodes_per_unit=2",
                          "generation.max_reasks=2", "generation.only_successful=false")
        summary = run_generation(cfg, base_path, tmp_path / "data", [0, 1])
        assert server.stats()["garbage"] == 6
    rows = rejections(tmp_path / "data")
    assert len(rows) == summary["rejections"] == 2
    assert {(r.reason_kind, r.asks, r.last_reply) for r in rows} == {("parse", 3, GARBAGE_REPLY)}
    assert sorted(r.request_id for r in rows) == ["train0-0", "train0-1"]
    assert summary["rejections_by_reason"] == {"parse": 2}


def test_actors_share_one_rpm_limit_and_never_meet_the_servers(ray_cluster, base_and_reference, tmp_path):
    from ray_jobs.generate import run_generation

    base_path, reference = base_and_reference
    # server: 80 requests per 1 s window. Two actors with 3 episodes each could send ~300/s.
    with running_server(reply_fn="expert_reply:pursuit_expert", rpm=80, rate_window_s=1.0, latency_s=0.02) as server:
        cfg = http_config(server.url, "teacher.limits.requests_per_minute=4800", "teacher.limits.window_s=1")
        tracker = Tracker(tmp_path, WandbConfig(mode="disabled"), "generate")
        summary = run_generation(cfg, base_path, tmp_path / "data", SEEDS, tracker=tracker)
        stats = server.stats()
    assert stats.get("rate_limited", 0) == 0
    assert summary["limiter_granted"] == summary["teacher_api_calls"] == stats["ok"]
    assert_same_records(tmp_path / "data", reference)
    live = [row for row in read_side_log(tmp_path, "generate") if "generation/live/requests" in row]
    assert live and live[-1]["generation/live/units_total"] == 2  # the live figures went to the tracker


def _descends_from_this_process(pid: int) -> bool:
    """True for processes of this test's own Ray cluster (raylet started by this process, workers by it)."""
    import os

    for _ in range(6):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, IndexError, ValueError):
            return False
        if pid == os.getpid():
            return True
    return False


def test_an_actor_killed_mid_task_loses_nothing(ray_cluster, base_and_reference, tmp_path):
    import os
    import signal
    import threading
    import time

    from generation.storage.shards import Manifest
    from ray_jobs.generate import run_generation

    base_path, _ = base_and_reference
    reference = reference_records(base_path, SEEDS, per_task=2)  # 3 tasks for 2 actors
    data = tmp_path / "data"
    with running_server(reply_fn="expert_reply:pursuit_expert", latency_s=0.01) as server:
        cfg = http_config(server.url, "generation.episodes_per_unit=2")
        outcome: dict = {}
        job = threading.Thread(target=lambda: outcome.update(run_generation(cfg, base_path, data, SEEDS)))
        job.start()
        deadline = time.monotonic() + 240
        while not (data / MANIFEST_NAME).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        first = next(iter(Manifest(data).entries.values()))
        victim = first["pid"]  # that actor is already playing its next task
        assert _descends_from_this_process(victim)
        os.kill(victim, signal.SIGKILL)
        job.join(300)
    assert outcome["units"] == 3 and outcome["units_retried"] == 1  # its unfinished task went to a fresh actor
    entries = Manifest(data).entries
    assert sum(e["pid"] == victim for e in entries.values()) == 1
    assert_same_records(data, reference)

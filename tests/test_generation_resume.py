"""`kill -9` of the generation driver mid-run, then the same command again: no loss, no duplicate, no prompt
answered twice by the server (it counts answers per prompt hash).

The kill comes while the server holds every new request (so each answer it gave had reached the job),
in the middle of tasks, with shards of unfinished tasks possibly on disk.
Run: .venv/bin/pytest tests/test_generation_resume.py
"""

from __future__ import annotations

import sys

import pytest

from configs.loader import load_config
from configs.schema import RunConfig
from generation.ld.envs.registry import make_env
from generation.storage.shards import Manifest
from driver_helpers import kill_then_rerun
from generation_fixtures import assert_same_records, reference_records
from teacher_server import running_server

pytestmark = pytest.mark.slow
EPISODES, PER_TASK = 8, 2


def _command(server_url: str, run_dir) -> list[str]:
    overrides = ["teacher.backend=openai", f"teacher.base_url={server_url}", "teacher.model=m",
                 "teacher.backoff_initial_s=0.05", "teacher.backoff_max_s=0.2", f"generation.train_episodes={EPISODES}",
                 f"generation.episodes_per_unit={PER_TASK}", "generation.num_actors=2", "ray.num_cpus=2",
                 "wandb.mode=disabled"]
    return [sys.executable, "-m", "launch.cli", "generate", *overrides, "--run-dir", str(run_dir)]


def test_kill_minus_nine_then_resume_loses_nothing_and_pays_nothing_twice(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    data_dir = run_dir / "data"
    with running_server(reply_fn="expert_reply:pursuit_expert", latency_s=0.03) as server:
        done_before, answered_before, answers = kill_then_rerun(_command(server.url, run_dir), log, data_dir, server,
                                                                at_least=2, units=EPISODES // PER_TASK)

    repeated = {h: n for h, n in answers.items() if n > 1}
    assert not repeated, f"{len(repeated)} prompts were answered more than once"
    assert sum(answers.values()) > answered_before  # the resume did ask for what was never answered

    manifest = Manifest(data_dir)
    assert sorted(manifest.entries) == list(range(EPISODES // PER_TASK))
    resumed = [manifest.entries[i]["usage"] for i in manifest.entries if i >= done_before]
    assert sum(u["cache_hits"] for u in resumed) > 0  # half-done tasks replayed their paid answers from the cache

    cfg = load_config(run_dir / "config.resolved.yaml", [], RunConfig)
    seeds = make_env(cfg.task).train_seeds(EPISODES)
    assert_same_records(data_dir, reference_records(run_dir / "function_base.json", seeds, PER_TASK))

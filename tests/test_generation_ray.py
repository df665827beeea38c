"""Teacher demonstrations on a real local Ray cluster, over real HTTP with the openai backend."""

import pytest

from configs.loader import load_config
from configs.schema import RunConfig
from generation.ld.envs.pursuit import resources
from generation.ld.envs.registry import make_env
from generation.ld.functions.function_base import build_function_base
from generation.storage.records import RawActionRecord, StageDecisionRecord
from generation.storage.shards import read_records, shard_paths
from generation.ld.functions.function_base import sample_states
from teacher_server import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def _base(cfg, tmp_path):
    env = make_env(cfg.task)
    base, _ = build_function_base(resources.function_base_reply(), env.stages, sample_states(env, [0]),
                                  cfg.sandbox, env.check_stage_output, "r")
    base.save(tmp_path / "function_base.json")
    return tmp_path / "function_base.json"


def test_http_teacher_through_faults_on_ray(ray_cluster, tmp_path):
    with running_server(reply_fn="expert_reply:pursuit_expert", fail_first=4, rate_limit_first=3,
                        retry_after_s=0.2) as server:
        cfg = load_config(None, [f"teacher.backend=openai", f"teacher.base_url={server.url}", "teacher.model=m",
                                 "teacher.backoff_initial_s=0.05", "teacher.backoff_max_s=0.2",
                                 "generation.num_actors=2", "generation.episodes_per_unit=3"], RunConfig)
        from ray_jobs.generate import run_generation

        base_path = _base(cfg, tmp_path)
        summary = run_generation(cfg, base_path, tmp_path / "data", list(range(6)))
        stats = server.stats()
        assert summary["episodes"] == 6
        assert summary["teacher_errors"] == 0  # every fault was retried through
        ld = read_records(shard_paths(tmp_path / "data", "ld"), StageDecisionRecord)
        kd = read_records(shard_paths(tmp_path / "data", "kd"), RawActionRecord)
        assert len(ld) == summary["stage_records"] > 0 and len(kd) > 0
        assert len(shard_paths(tmp_path / "data", "ld")) == 2  # one shard per task of 3 episodes
        assert summary["teacher_requests"] == stats["ok"]  # what we counted is what the server answered

        # A rerun finds every task done and asks the teacher nothing.
        again = run_generation(cfg, base_path, tmp_path / "data", list(range(6)))
        assert again["stage_records"] == summary["stage_records"]
        assert server.stats()["ok"] == stats["ok"]

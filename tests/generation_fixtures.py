"""Shared pieces of the generation-job tests: a function base, the reference record set, reading outputs.

The reference is what the built-in expert teacher produces in-process (no Ray, no HTTP) for the same
tasks; the test server answers exactly like it (`expert_reply:pursuit_expert`), so any run against the
server, however many faults it went through, must end with exactly these records.
"""

from __future__ import annotations

import json
from pathlib import Path

from configs.loader import load_config
from configs.schema import RunConfig
from generation.ld.envs.pursuit import resources
from generation.ld.envs.registry import make_env
from generation.ld.functions.function_base import build_function_base
from generation.storage.records import RawActionRecord, RejectionRecord, StageDecisionRecord
from generation.storage.shards import read_records, shard_paths


def http_config(server_url: str, *overrides: str) -> RunConfig:
    """A config that talks to the test server, with fast retries and small tasks."""
    base = ["teacher.backend=openai", f"teacher.base_url={server_url}", "teacher.model=m", "teacher.timeout_s=2",
            "teacher.backoff_initial_s=0.05", "teacher.backoff_max_s=0.2", "generation.num_actors=2",
            "generation.episodes_per_unit=3", "generation.progress=false", "ray.num_cpus=2"]
    return load_config(None, [*base, *overrides], RunConfig)


def function_base(cfg: RunConfig, directory: Path) -> Path:
    from generation.ld.functions.function_base import sample_states

    env = make_env(cfg.task)
    base, _ = build_function_base(resources.function_base_reply(), env.stages, sample_states(env, [0]),
                                  cfg.sandbox, env.check_stage_output, "r")
    path = Path(directory) / "function_base.json"
    base.save(path)
    return path


def reference_records(base_path: Path, seeds: list[int], per_task: int) -> dict[str, set[str]]:
    """Records of the same tasks (same tags, same chunks) played by the in-process expert teacher."""
    from generation.ld.workers import TeacherDemoWorker

    worker = TeacherDemoWorker(load_config(None, [], RunConfig), base_path)
    out: dict[str, set[str]] = {"ld": set(), "kd": set()}
    try:
        for index, start in enumerate(range(0, len(seeds), per_task)):
            result = worker.run(seeds[start:start + per_task], f"train{index}")
            out["ld"] |= {_key(r) for r in result["stage_records"]}
            out["kd"] |= {_key(r) for r in result["action_records"]}
    finally:
        worker.close()
    return out


def _key(record) -> str:
    return json.dumps(record.model_dump(mode="json"), sort_keys=True)


def output_records(data_dir: Path) -> dict[str, list[str]]:
    """Every record the run's manifest vouches for, as canonical JSON (lists: duplicates would show)."""
    return {"ld": [_key(r) for r in read_records(shard_paths(data_dir, "ld"), StageDecisionRecord)],
            "kd": [_key(r) for r in read_records(shard_paths(data_dir, "kd"), RawActionRecord)]}


def rejections(data_dir: Path) -> list[RejectionRecord]:
    return read_records(shard_paths(data_dir, "rejections"), RejectionRecord)


def assert_same_records(data_dir: Path, reference: dict[str, set[str]]) -> None:
    got = output_records(data_dir)
    for kind in ("ld", "kd"):
        assert len(got[kind]) == len(set(got[kind])), f"duplicate {kind} records"
        assert set(got[kind]) == reference[kind], f"{kind} records differ from the reference"

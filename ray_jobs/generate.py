"""Teacher demonstrations on Ray: an actor pool plays training episodes; the driver writes shards.

Work is cut into tasks of `episodes_per_task` seeds; task i becomes shards `ld-<i>` and `kd-<i>`,
so a rerun skips tasks whose shards are already on disk (both written atomically).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generation.shards import shard_paths, write_shard
from generation.workers import TeacherDemoWorker
from ray_jobs.cluster import ensure_ray
from ray_jobs.progress import progress_bar


def _tasks(seeds: list[int], size: int) -> list[tuple[int, list[int]]]:
    return [(i, seeds[j:j + size]) for i, j in enumerate(range(0, len(seeds), size))]


def _done(out_dir: Path, index: int) -> bool:
    return (out_dir / f"episodes-{index:05d}.json").exists()


def _write(out_dir: Path, index: int, result: dict[str, Any]) -> None:
    if result["stage_records"]:
        write_shard(result["stage_records"], out_dir / f"ld-{index:05d}.parquet")
        write_shard(result["action_records"], out_dir / f"kd-{index:05d}.parquet")
    # written last: its presence marks the task complete
    tmp = out_dir / f".episodes-{index:05d}.json.tmp"
    tmp.write_text(json.dumps({"episodes": result["episodes"], "usage": result["usage"]}))
    tmp.replace(out_dir / f"episodes-{index:05d}.json")


def run_generation(cfg: Any, base_path: Path, out_dir: Path, seeds: list[int]) -> dict[str, Any]:
    import ray
    from ray.util import ActorPool

    ensure_ray(cfg.ray)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [(i, s) for i, s in _tasks(seeds, cfg.generation.episodes_per_task) if not _done(out_dir, i)]
    n_actors = max(1, min(cfg.generation.num_actors, len(todo)))
    if todo:
        Worker = ray.remote(num_cpus=1)(TeacherDemoWorker)
        actors = [Worker.remote(cfg, str(base_path), i) for i in range(n_actors)]
        pool = ActorPool(actors)
        with progress_bar("teacher demonstrations", len(todo)) as advance:
            results = pool.map_unordered(lambda actor, task: actor.run_task.remote(*task), todo)
            for index, result in results:
                _write(out_dir, index, result)
                advance(1, f"{len(result['stage_records'])} decisions")
        for a in actors:
            ray.kill(a)
    return summarize_generation(out_dir)


def summarize_generation(out_dir: Path) -> dict[str, Any]:
    from generation.records import StageDecisionRecord
    from generation.shards import read_records

    episodes, usage = [], {"requests": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0}
    for path in sorted(out_dir.glob("episodes-*.json")):
        data = json.loads(path.read_text())
        episodes += data["episodes"]
        for k in usage:
            usage[k] += data["usage"].get(k, 0)
    ld_paths = shard_paths(out_dir, "ld")
    n_ld = sum(1 for _ in read_records(ld_paths, StageDecisionRecord)) if ld_paths else 0
    wins = sum(e["success"] for e in episodes)
    return {"episodes": len(episodes), "teacher_wins": wins, "stage_records": n_ld,
            "ld_shards": [str(p) for p in ld_paths], "kd_shards": [str(p) for p in shard_paths(out_dir, "kd")],
            **{f"teacher_{k}": v for k, v in usage.items()}}

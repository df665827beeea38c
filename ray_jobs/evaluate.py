"""Parallel evaluation: held-out episodes of each policy spread over Ray workers."""

from __future__ import annotations

from typing import Any

from generation.envs.base import aggregate, aggregate_by
from generation.workers import EvalWorker
from ray_jobs.cluster import ensure_ray
from ray_jobs.progress import progress_bar


def _split(seeds: list[int], parts: int) -> list[list[int]]:
    return [chunk for chunk in (seeds[i::parts] for i in range(parts)) if chunk]


def evaluate_policies(cfg: Any, base_path: str, specs: dict[str, dict[str, Any]], seeds: list[int]
                      ) -> dict[str, dict[str, Any]]:
    """For each policy: overall metrics, metrics per instruction kind, and its episodes."""
    import ray

    ensure_ray(cfg.ray)
    Worker = ray.remote(num_cpus=1)(EvalWorker)
    chunks = _split(seeds, cfg.eval.num_workers)
    workers = [Worker.remote(cfg, base_path, i) for i in range(len(chunks))]
    out: dict[str, dict[str, Any]] = {}
    try:
        with progress_bar("evaluation (policies)", len(specs)) as advance:
            for name, spec in specs.items():
                parts = ray.get([w.run.remote(name, spec, c) for w, c in zip(workers, chunks)])
                episodes = sorted((ep for part in parts for ep in part), key=lambda e: e["seed"])
                out[name] = {"metrics": aggregate(episodes), "by_kind": aggregate_by(episodes), "episodes": episodes}
                advance(1, f"{name}: success {out[name]['metrics']['success_rate']:.2f}")
    finally:
        for w in workers:
            ray.kill(w)
    return out

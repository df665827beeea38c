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
    out: dict[str, dict[str, Any]] = {}
    with progress_bar("evaluation (policy x worker)", len(specs) * cfg.eval.num_workers) as advance:
        for name, spec in specs.items():
            chunks = _split(seeds, cfg.eval.num_workers)
            workers = [Worker.remote(cfg, base_path, name, spec, i) for i in range(len(chunks))]
            episodes = [ep for part in ray.get([w.run.remote(c) for w, c in zip(workers, chunks)]) for ep in part]
            for w in workers:
                ray.kill(w)
            episodes.sort(key=lambda e: e["seed"])
            out[name] = {"metrics": aggregate(episodes), "by_kind": aggregate_by(episodes), "episodes": episodes}
            m = out[name]["metrics"]
            advance(len(chunks), f"{name}: success {m['success_rate']:.2f}")
    return out

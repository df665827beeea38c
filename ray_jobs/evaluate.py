"""Parallel evaluation: held-out episodes of each policy spread over Ray workers.

A worker that dies mid-task (node lost, OOM kill) is replaced and its chunk of seeds replayed, up to
`eval.unit_retries` times per chunk; episodes are deterministic given the seed, so a replay is exact.
"""

from __future__ import annotations

from typing import Any

from generation.ld.envs.base import aggregate, aggregate_by
from generation.ld.workers import EvalWorker
from ray_jobs.cluster import ensure_ray
from ray_jobs.progress import progress_bar


class EvaluationFailed(RuntimeError):
    """A chunk of evaluation seeds failed more often than `eval.unit_retries` allows."""


def split_evenly(seeds: list[int], parts: int) -> list[list[int]]:
    return [chunk for chunk in (seeds[i::parts] for i in range(parts)) if chunk]


def run_chunks(Worker, workers: list, cfg: Any, base_path: str, name: str, spec: dict[str, Any],
               chunks: list[list[int]], *worker_args: Any) -> list[list[dict[str, Any]]]:
    """Every chunk's episodes; a chunk whose worker died is rerun on a fresh worker (made with the same
    `worker_args` as the others, e.g. the teacher services' hooks)."""
    import ray
    from ray.exceptions import RayActorError

    retries = getattr(cfg.eval, "unit_retries", 2)
    parts: list[list[dict[str, Any]] | None] = [None] * len(chunks)
    failures = [0] * len(chunks)
    pending = {workers[i].run.remote(name, spec, c): i for i, c in enumerate(chunks)}
    while pending:
        [done], _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done)
        try:
            parts[i] = ray.get(done)
        except RayActorError as exc:
            failures[i] += 1
            if failures[i] > retries:
                raise EvaluationFailed(f"evaluation of {name} on seeds {chunks[i][:5]}...: worker {i} died "
                                       f"{failures[i]} times (eval.unit_retries={retries}); last: {exc}") from None
            ray.kill(workers[i])
            workers[i] = Worker.remote(cfg, base_path, i, *worker_args)
            pending[workers[i].run.remote(name, spec, chunks[i])] = i
    return parts  # type: ignore[return-value]


def evaluate_policies(cfg: Any, base_path: str, specs: dict[str, dict[str, Any]], seeds: list[int],
                      hooks: Any = None) -> dict[str, dict[str, Any]]:
    """For each policy: overall metrics, metrics per instruction kind, and its episodes. `hooks` reach the
    run's teacher services (limiter, cache, stats) for the teacher under evaluation and emergency writers."""
    import ray

    ensure_ray(cfg.ray)
    Worker = ray.remote(num_cpus=1, max_restarts=0)(EvalWorker)
    chunks = split_evenly(seeds, cfg.eval.num_workers)
    workers = [Worker.remote(cfg, base_path, i, hooks) for i in range(len(chunks))]
    out: dict[str, dict[str, Any]] = {}
    try:
        with progress_bar("evaluation (policies)", len(specs)) as advance:
            for name, spec in specs.items():
                parts = run_chunks(Worker, workers, cfg, base_path, name, spec, chunks, hooks)
                episodes = sorted((ep for part in parts for ep in part), key=lambda e: e["seed"])
                out[name] = {"metrics": aggregate(episodes), "by_kind": aggregate_by(episodes), "episodes": episodes}
                advance(1, f"{name}: success {out[name]['metrics']['success_rate']:.2f}")
    finally:
        for w in workers:
            ray.kill(w)
    return out

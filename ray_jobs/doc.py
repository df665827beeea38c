"""Divide-or-Conquer pipeline evaluation spread over Ray workers.

Each job (a name, a spec, its questions) is split over `eval.num_workers` actors; chunking and the
replay of a chunk whose worker died are the evaluation job's own (`ray_jobs.evaluate`). The workers ask
the teacher through the run's teacher services (`hooks`: limiter, cache, stats). The teacher samples
are a job of their own, committed unit by unit: `ray_jobs/doc_samples.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.doc.domains import DocItem
from generation.doc.worker import DocWorker
from generation.teachers.accounting import add_snapshots
from ray_jobs.cluster import ensure_ray
from ray_jobs.evaluate import run_chunks, split_evenly
from ray_jobs.progress import progress_bar


def run_doc_jobs(cfg: Any, run_dir: str | Path, jobs: dict[str, tuple[dict[str, Any], list[DocItem]]],
                 title: str, hooks: Any = None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """({job name: its per-question records}, the teacher usage summed over workers)."""
    import ray

    ensure_ray(cfg.ray)
    Worker = ray.remote(num_cpus=1, max_restarts=0)(DocWorker)
    workers = [Worker.remote(cfg, str(run_dir), i, hooks) for i in range(cfg.eval.num_workers)]
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with progress_bar(title, len(jobs)) as advance:
            for name, (spec, items) in jobs.items():
                chunks = split_evenly(items, len(workers))
                parts = run_chunks(Worker, workers, cfg, str(run_dir), name, spec, chunks, hooks)
                out[name] = [record for part in parts for record in part]
                advance(1, name)
        usage = add_snapshots(ray.get([w.usage.remote() for w in workers]))
    finally:
        for worker in workers:
            ray.kill(worker)
    return out, usage

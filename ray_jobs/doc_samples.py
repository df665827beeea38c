"""Divide-or-Conquer teacher samples on Ray, each unit of questions committed exactly once.

The training questions are cut into units of `task.questions_per_unit`; unit i becomes shards
`samples-<i>.parquet` and `rejections-<i>.parquet` plus `episodes-<i>.json` (its teacher usage), then
one fsynced line in `manifest.jsonl` with their checksums (generation/storage/shards.py), written by the
driver only. A rerun of the same command skips every unit the manifest vouches for and reads its
samples back from the shards; a unit cut short is asked again and the response cache answers every
request already paid for. So `kill -9` at any moment loses nothing, duplicates nothing, and bills
nothing twice. A unit runs as one Ray task (`generation.doc.worker.sample_unit`): a worker process
that dies is replaced by Ray and the unit rerun, up to `eval.unit_retries` times.

    summary = run_sampling(cfg, run_dir / "data", items, services)   # services: TeacherServices
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

from generation.doc.domains import DocItem
from generation.doc.samples import DecompositionSample
from generation.doc.worker import sample_unit
from generation.storage.shards import Manifest, commit_unit, plan_units, read_records
from generation.teachers.accounting import usage_delta
from ray_jobs.generation_progress import GenerationProgress, committed_usage, run_figures, summary_table

POLL_S = 0.5


def commit_samples(out_dir: Path, manifest: Manifest, index: int, items: list[DocItem], result: dict[str, Any]) -> dict:
    """The unit's shards and usage file, then its manifest line (the commit point); its inputs are question ids."""
    info = {"rows": {"samples": len(result["samples"]), "rejections": len(result["rejections"])},
            "usage": result["usage"]}
    return commit_unit(out_dir, index, [item.uid for item in items],
                       {"samples": result["samples"], "rejections": result["rejections"]},
                       {"usage": result["usage"]}, info, manifest)


def read_samples(out_dir: Path) -> list[DecompositionSample]:
    """Every committed unit's samples, in unit order."""
    return read_records(Manifest(out_dir).verified_paths("samples"), DecompositionSample)


def _run_units(cfg: Any, out_dir: Path, manifest: Manifest, todo: list[tuple[int, list[DocItem]]],
               units_total: int, services: Any, tracker: Any) -> dict[str, Any]:
    """At most `eval.num_workers` units in flight; each committed as soon as it is back. This run's usage."""
    import ray

    sample = ray.remote(num_cpus=1, max_retries=cfg.eval.unit_retries)(sample_unit)
    before = services.totals()
    queue, running = deque(todo), {}
    done = units_total - len(todo)
    with GenerationProgress(units_total, done, tracker, title="Divide-or-Conquer teacher samples") as progress:
        while queue or running:
            while queue and len(running) < cfg.eval.num_workers:
                index, items = queue.popleft()
                running[sample.remote(cfg, services.hooks, items)] = (index, items)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in ready:
                index, items = running.pop(ref)
                commit_samples(out_dir, manifest, index, items, ray.get(ref))
                done += 1
            progress.update(usage_delta(services.totals(), before), done)
    return {**usage_delta(services.totals(), before), **services.limiter_stats()}


def run_sampling(cfg: Any, out_dir: Path, items: list[DocItem], services: Any, tracker: Any = None) -> dict[str, Any]:
    """Sample every unit the manifest does not yet vouch for; returns the job's summary (all units)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir)
    plan = plan_units(items, cfg.task.questions_per_unit)
    todo = [(i, unit) for i, unit in plan if not manifest.done(i, [item.uid for item in unit])]
    started = time.monotonic()
    live = _run_units(cfg, out_dir, manifest, todo, len(plan), services, tracker) if todo else {}
    summary = summarize_sampling(out_dir)
    summary.update(run_figures(live, services.billing() if live else {}, time.monotonic() - started))
    from rich.console import Console

    Console().print(summary_table(summary, title="Divide-or-Conquer teacher samples: summary"))
    return summary


def summarize_sampling(out_dir: Path) -> dict[str, Any]:
    """The figures of every committed unit, from the manifest."""
    entries = list(Manifest(out_dir).entries.values())
    return {"units": len(entries), "samples": sum(entry["rows"]["samples"] for entry in entries),
            "rejections": sum(entry["rows"]["rejections"] for entry in entries),
            **committed_usage([entry["usage"] for entry in entries])}

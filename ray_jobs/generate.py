"""Teacher demonstrations on Ray: actors play training episodes; the driver commits each unit exactly once.

Work is cut into units of `episodes_per_unit` seeds; unit i becomes shards `ld-<i>`, `kd-<i>`,
`rejections-<i>`, `runtime_functions-<i>` and `episodes-<i>.json`, then one line in `manifest.jsonl` with their checksums
(generation/storage/shards.py). Only the driver writes. A rerun of the same command skips every unit the
manifest vouches for and replays the rest; the response cache answers every request already paid
for, so `kill -9` of the driver or of any actor at any moment loses nothing, duplicates nothing, and
bills nothing twice. An actor that dies takes its unit with it: the unit is given to a fresh actor.

Throughput: every actor plays its unit's episodes in lockstep (one batched teacher call per stage),
so requests in flight = episodes_per_unit x actors, under the cluster-wide rate limiter.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from generation.storage.shards import Manifest, commit_unit, plan_units
from generation.teachers.accounting import usage_delta
from generation.ld.workers import TeacherDemoWorker
from ray_jobs.cluster import ensure_ray
from ray_jobs.generation_progress import GenerationProgress, committed_usage, run_figures, summary_table
from ray_jobs.teacher_services import TeacherServices

# runtime_functions: every function the teacher wrote for an emergency, accepted or rejected (with reasons)
SHARD_KINDS = {"ld": "stage_records", "kd": "action_records", "rejections": "rejections",
               "runtime_functions": "runtime_functions"}
POLL_S = 0.5
# the function-base request's usage, written beside the shards: the run's cost table counts it with the units'
FUNCTION_BASE_USAGE = "function_base_usage.json"


class DemoActor(TeacherDemoWorker):
    """The worker as a Ray actor: also says where it ran."""

    def run_unit(self, index: int, seeds: list[int]) -> tuple[int, dict[str, Any]]:
        import os

        import ray

        index, result = super().run_unit(index, seeds)
        self.policy.meter.push()  # the hub sees the unit's last requests before the driver commits it
        result["where"] = {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
        return index, result


def commit_result(out_dir: Path, manifest: Manifest, index: int, seeds: list[int], result: dict[str, Any]) -> dict:
    """Shards, episodes file, then the manifest line (the commit point)."""
    episodes = result["episodes"]
    info = {"rows": {kind: len(result[key]) for kind, key in SHARD_KINDS.items()},
            "episodes": len(episodes), "wins": sum(bool(e.get("success")) for e in episodes),
            "usage": result["usage"], **result.get("where", {})}
    return commit_unit(out_dir, index, seeds, {kind: result[key] for kind, key in SHARD_KINDS.items()},
                       {"episodes": episodes, "usage": result["usage"]}, info, manifest)


class _Dispatcher:
    """Hands units to actors as they free up; replaces an actor that died and re-queues its task."""

    def __init__(self, cfg: Any, base_path: Path, hooks: Any, todo: list[tuple[int, list[int]]]):
        import ray

        self.cfg = cfg
        self.make = ray.remote(num_cpus=cfg.generation.actor_num_cpus, max_restarts=0)(DemoActor).options(
            scheduling_strategy="SPREAD")
        self.base_path, self.hooks = str(base_path), hooks
        self.queue = deque(todo)
        self.running: dict[Any, tuple[Any, tuple[int, list[int]]]] = {}
        self.failures: Counter[int] = Counter()
        self.actors: list[Any] = []
        for i in range(min(cfg.generation.num_actors, len(todo))):
            self._feed(self._spawn(i))

    def _spawn(self, worker_id: int) -> Any:
        actor = self.make.remote(self.cfg, self.base_path, worker_id, self.hooks)
        self.actors.append(actor)
        return actor

    def _feed(self, actor: Any) -> None:
        if self.queue:
            unit = self.queue.popleft()
            self.running[actor.run_unit.remote(*unit)] = (actor, unit)

    def next_results(self, timeout_s: float) -> list[tuple[int, list[int], dict[str, Any]]]:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout_s)
        out = []
        for ref in ready:
            actor, (index, seeds) = self.running.pop(ref)
            try:
                _, result = ray.get(ref)
            except (RayActorError, ActorDiedError, ActorUnavailableError) as error:
                self.failures[index] += 1
                if self.failures[index] > self.cfg.generation.unit_retries:
                    raise RuntimeError(f"unit {index} (seeds {seeds[0]}..{seeds[-1]}): its actor died "
                                       f"{self.failures[index]} times; last: {error}") from None
                self.queue.appendleft((index, seeds))
                self._feed(self._spawn(len(self.actors)))
                continue
            out.append((index, seeds, result))
            self._feed(actor)
        return out

    def stop(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def run_generation(cfg: Any, base_path: Path, out_dir: Path, seeds: list[int], tracker: Any = None,
                   services: TeacherServices | None = None, usage_since: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Play every unit the manifest does not yet vouch for; returns the job's summary.

    `services` are the run's teacher services when the caller already started them (the function base was
    asked through the same limiter and cache); otherwise this job starts its own. The run's live figures
    count from `usage_since` (a totals snapshot taken before the function base was asked), else from now."""
    ensure_ray(cfg.ray)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir)
    plan = plan_units(seeds, cfg.generation.episodes_per_unit)
    todo = [(i, s) for i, s in plan if not manifest.done(i, s)]
    started = time.monotonic()
    live: dict[str, Any] = {}
    billing: dict[str, Any] = {}
    if todo:
        own_services = services is None
        services = services or TeacherServices(cfg.teacher, out_dir)
        before = usage_since or services.totals()
        dispatcher = None
        try:
            dispatcher = _Dispatcher(cfg, base_path, services.hooks, todo)
            with GenerationProgress(len(plan), len(plan) - len(todo), tracker, cfg.generation.progress,
                                    cfg.generation.log_every_s) as progress:
                done = len(plan) - len(todo)
                while dispatcher.running:
                    for index, task_seeds, result in dispatcher.next_results(POLL_S):
                        commit_result(out_dir, manifest, index, task_seeds, result)
                        done += 1
                    progress.update(usage_delta(services.totals(), before), done)
                live = {**usage_delta(services.totals(), before), **services.limiter_stats(),
                        "units_retried": sum(dispatcher.failures.values())}
            billing = services.billing()
        finally:
            if dispatcher is not None:
                dispatcher.stop()
            if own_services:
                services.stop()
    summary = summarize_generation(out_dir)
    summary.update(run_figures(live, billing, time.monotonic() - started))
    _report(summary, tracker, cfg.generation.progress)
    return summary


def _report(summary: dict[str, Any], tracker: Any, show: bool) -> None:
    if show:
        from rich.console import Console

        Console().print(summary_table(summary))
    if tracker is not None:
        flat = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        tracker.summary({f"generation/{k}": v for k, v in flat.items()})


def summarize_generation(out_dir: Path) -> dict[str, Any]:
    """The whole output directory's figures, from its manifest (committed units only) and the function base."""
    import json

    manifest = Manifest(out_dir)
    entries = [manifest.entries[i] for i in sorted(manifest.entries)]
    usages = [entry["usage"] for entry in entries]
    base_usage = Path(out_dir) / FUNCTION_BASE_USAGE
    if base_usage.is_file():
        usages.append(json.loads(base_usage.read_text()))
    rows = Counter()
    for entry in entries:
        rows.update(entry.get("rows", {}))
    return {"units": len(entries), "episodes": sum(e.get("episodes", 0) for e in entries),
            "teacher_wins": sum(e.get("wins", 0) for e in entries), "stage_records": rows["ld"],
            "action_records": rows["kd"], "rejections": rows["rejections"],
            "ld_shards": [str(p) for p in manifest.paths("ld")], "kd_shards": [str(p) for p in manifest.paths("kd")],
            "rejection_shards": [str(p) for p in manifest.paths("rejections")],
            "runtime_functions": rows["runtime_functions"],
            "nodes": sorted({e["node_id"] for e in entries if e.get("node_id")}), **committed_usage(usages)}

"""The teacher service's shared parts on Ray, started once per job and used by every caller of the
teacher in it (LD function base, demonstrations, emergencies, teacher evaluation; DoC sampling and
solving; LtR feedback): the cluster-wide rate limiter, the stats hub behind the live display, the
response cache.

    with TeacherServices(cfg.teacher, data_dir) as services:
        service = TeacherService(cfg.teacher, services.hooks, ...)   # in any process of the job

All of them run on the driver's node (they hold the job's state; worker nodes may come and go). The
workers reach them through `TeacherHooks`, picklable factories called inside each worker process.

Cache placement: `file` lets every worker open the SQLite file itself (WAL: same host, local disk);
`actor` puts the file behind one `CacheServer` actor, which is what a multi-node cluster needs; `auto`
picks `actor` when the cluster has more than one node.
"""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from configs.teacher_schema import TeacherConfig
from generation.storage.cache import ResponseCache
from generation.teachers.accounting import add_snapshots
from generation.teachers.stack import TeacherHooks
from ray_jobs.rate_limiter import ClusterGate, start_limiter


class StatsHub:
    """Latest cumulative UsageMeter snapshot of every worker process; the driver sums them."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}

    async def push(self, worker_key: str, snapshot: dict[str, Any]) -> None:
        self.latest[worker_key] = snapshot

    async def totals(self) -> dict[str, Any]:
        return add_snapshots(list(self.latest.values()))


class _StatsListener:
    def __init__(self, hub: Any, key: str):
        self.hub, self.key = hub, key

    def __call__(self, snapshot: dict[str, Any]) -> None:
        self.hub.push.remote(self.key, snapshot)  # fire and forget: snapshots are cumulative


class StatsHook:
    def __init__(self, hub: Any):
        self.hub = hub

    def __call__(self) -> _StatsListener:
        return _StatsListener(self.hub, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")


class CacheServer:
    """The response cache behind one actor (sync methods, one at a time: SQLite calls are short)."""

    def __init__(self, path: str):
        self.cache = ResponseCache(path)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.cache.put(key, entry)

    def billing(self) -> dict[str, dict[str, float]]:
        return self.cache.billing()


class RemoteCache:
    """A worker's client of the CacheServer, with the cache's async face."""

    def __init__(self, server: Any):
        self.server = server

    async def aget(self, key: str) -> dict[str, Any] | None:
        return await self.server.get.remote(key)

    async def aput(self, key: str, entry: dict[str, Any]) -> None:
        await self.server.put.remote(key, entry)  # awaited: the answer is durable before it is used


class RemoteCacheHook:
    def __init__(self, server: Any):
        self.server = server

    def __call__(self) -> RemoteCache:
        return RemoteCache(self.server)


def alive_nodes() -> list[str]:
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


def job_key(out_dir: Path) -> str:
    """Names the job's actors: the same output directory is the same job (a resume finds its limiter)."""
    return hashlib.sha256(str(Path(out_dir).resolve()).encode()).hexdigest()[:12]


class TeacherServices:
    """Starts the job's service actors on the driver's node; `hooks` is what every teacher caller gets."""

    def __init__(self, teacher_cfg: TeacherConfig, out_dir: Path):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        key = job_key(out_dir)
        self.actors: list[Any] = []
        gate = None
        self.limiter = None
        if teacher_cfg.backend == "openai" and teacher_cfg.limits.active:
            self.limiter = start_limiter(teacher_cfg.limits, f"teacher-limiter-{key}", here)
            self.actors.append(self.limiter)
            gate = ClusterGate(self.limiter)
        self.hub = ray.remote(num_cpus=0)(StatsHub).options(scheduling_strategy=here).remote()
        self.actors.append(self.hub)
        self.cache_mode = self._cache_mode(teacher_cfg.cache.mode)
        self.cache_path = Path(teacher_cfg.cache.path or Path(out_dir) / "teacher_cache.sqlite")
        self.cache_server = None
        cache = None
        if self.cache_mode == "file":
            cache = functools.partial(ResponseCache, str(self.cache_path))
        elif self.cache_mode == "actor":
            self.cache_server = ray.remote(num_cpus=0)(CacheServer).options(scheduling_strategy=here).remote(
                str(self.cache_path))
            self.actors.append(self.cache_server)
            cache = RemoteCacheHook(self.cache_server)
        self.hooks = TeacherHooks(gate=gate, cache=cache, stats=StatsHook(self.hub))

    @staticmethod
    def _cache_mode(mode: str) -> str:
        nodes = len(alive_nodes())
        if mode == "auto":
            return "actor" if nodes > 1 else "file"
        if mode == "file" and nodes > 1:
            from rich.console import Console

            Console(stderr=True).print(
                f"[yellow]teacher.cache.mode=file on {nodes} nodes: actors on other nodes open their own copy "
                "of the path unless it is on a shared file system, where SQLite's WAL is unsafe; "
                "teacher.cache.mode=actor keeps one cache for the whole cluster")
        return mode

    def totals(self) -> dict[str, Any]:
        import ray

        return ray.get(self.hub.totals.remote())

    def limiter_stats(self) -> dict[str, Any]:
        import ray

        return ray.get(self.limiter.stats.remote()) if self.limiter is not None else {}

    def billing(self) -> dict[str, dict[str, float]]:
        """Everything ever paid for through the cache file, per model (each answer once)."""
        import ray

        if self.cache_server is not None:
            return ray.get(self.cache_server.billing.remote())
        if self.cache_mode == "file" and self.cache_path.exists():
            cache = ResponseCache(self.cache_path)
            try:
                return cache.billing()
            finally:
                cache.close()
        return {}

    def stop(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)

    def __enter__(self) -> TeacherServices:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def teacher_services(cfg: Any, run_dir: Path) -> TeacherServices:
    """A command's teacher services (Ray started per `cfg.ray` first; the cache in `<run_dir>/data`), started
    once for every stage of the command that asks the teacher, whatever the method."""
    from ray_jobs.cluster import ensure_ray

    ensure_ray(cfg.ray)
    return TeacherServices(cfg.teacher, Path(run_dir) / "data")

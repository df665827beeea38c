"""The cluster-wide rate limiter: one named Ray actor holds the provider's buckets for every actor on every node.

Each worker process talks to it through a `BatchingGate` (generation/teachers/limits.py): all of the
process's waiting HTTP attempts go in one `grant` call, and unused output-token reservations ride
along, so the limiter handles one small call per batch, not one per request. Grants come back
scheduled (each with the delay after which it may go), so workers sleep instead of polling. A 429 anywhere is
reported at once and pauses every process for the server's Retry-After.

The arithmetic lives in `generation.teachers.limits.RateBuckets` (unit-tested with a fake clock);
this module is the Ray glue.
"""

from __future__ import annotations

from typing import Any

from configs.teacher_schema import ProviderLimits
from generation.teachers.limits import SCHEDULE_AHEAD_S, BatchingGate, Cost, RateBuckets


class ClusterRateLimiter:
    """The actor. Async methods: calls from many workers interleave on one event loop, never in parallel."""

    def __init__(self, limits: dict[str, Any]):
        self.buckets = RateBuckets(ProviderLimits(**limits))
        self.rounds = 0

    async def grant(self, costs: list[tuple[int, int, int]], settled_output: int = 0) -> tuple[list[float], float]:
        self.rounds += 1
        self.buckets.settle_output(settled_output)
        return self.buckets.grant([Cost(*c) for c in costs], SCHEDULE_AHEAD_S)

    async def throttled(self, retry_after_s: float | None) -> None:
        self.buckets.throttled(retry_after_s)

    async def stats(self) -> dict[str, Any]:
        return {"limiter_rounds": self.rounds, "limiter_granted": self.buckets.granted,
                "limiter_throttles": self.buckets.throttles}


class ClusterGate:
    """Picklable factory of a worker's gate; called inside the worker process (see TeacherHooks)."""

    def __init__(self, limiter: Any):
        self.limiter = limiter

    def __call__(self) -> BatchingGate:
        limiter = self.limiter

        async def grant(costs: list[Cost], settled_output: int) -> tuple[list[float], float]:
            packed = [(c.requests, c.input_tokens, c.output_tokens) for c in costs]
            return await limiter.grant.remote(packed, settled_output)

        return BatchingGate(grant, lambda retry_after_s: limiter.throttled.remote(retry_after_s))


def start_limiter(limits: ProviderLimits, name: str, scheduling_strategy: Any = None) -> Any:
    """The named limiter actor for this job (reused if it already runs under that name)."""
    import ray

    Actor = ray.remote(num_cpus=0, max_restarts=-1)(ClusterRateLimiter)
    options = {"name": name, "get_if_exists": True}
    if scheduling_strategy is not None:
        options["scheduling_strategy"] = scheduling_strategy
    return Actor.options(**options).remote(limits.model_dump())

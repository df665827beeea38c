"""Rate-limit arithmetic and request gates, free of Ray so unit tests drive them with a fake clock.

`TokenBucket` keeps any window of `window_s` (plus `jitter_s`) under a provider limit: capacity C
(a small burst) and refill rate r = (L - C) / (window_s + jitter_s), so a window holds at most
C + r (window_s + jitter_s) = L units. One request bigger than C may overdraw the bucket (debt), so a
huge prompt still goes through while the long-run rate stays r. `RateBuckets` holds one bucket per
limit (requests, input tokens, output tokens) and grants a batch of costs in FIFO order, each at the
time the buckets allow it (up to `SCHEDULE_AHEAD_S` ahead): the caller sleeps until then instead of
asking again, so the limiter's round trip is off the path and the rate stays the buckets' rate.

`BatchingGate` is what a backend awaits before each HTTP attempt. It batches every waiting request of
its process into one grant call, so the cluster-wide limiter (a Ray actor, `ray_jobs/rate_limiter.py`)
sees one call per batch, not one per request. `local_gate` is the same gate on in-process buckets.
`AdaptiveConcurrency` is per-process AIMD over requests in flight: halve on a 429, +1 per round trip.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

from configs.teacher_schema import ProviderLimits

# How far ahead a grant may be scheduled. Grants already scheduled still go after a 429 elsewhere
# blocks new ones, so this bounds what a throttle cannot stop.
SCHEDULE_AHEAD_S = 1.0


@dataclass(frozen=True)
class Cost:
    """What one HTTP attempt may use of each limit (output tokens are estimated, then settled)."""

    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0


def estimate_tokens(messages: list[dict[str, str]], chars_per_token: float = 4.0) -> int:
    """Prompt tokens before the server counts them: characters / chars_per_token, plus a few per message."""
    chars = sum(len(m["content"]) for m in messages)
    return int(math.ceil(chars / chars_per_token)) + 4 * len(messages)


class TokenBucket:
    def __init__(self, limit: float, window_s: float, headroom: float, jitter_s: float, now: float):
        if limit <= 0:
            raise ValueError(f"TokenBucket: limit must be > 0, got {limit}")
        self.capacity = max(1.0, math.floor(headroom * limit / 2))
        self.rate = (limit - self.capacity) / (window_s + jitter_s)  # units per second
        if self.rate <= 0:
            raise ValueError(f"TokenBucket: limit {limit} per {window_s}s leaves no rate after a burst of "
                             f"{self.capacity}; raise the limit or lower the headroom")
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        """Advance to `now`; `updated` may lie ahead of the clock after a scheduled take."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_s(self, cost: float, now: float) -> float:
        """Seconds from `now` until `cost` may be taken (0: now)."""
        self._refill(now)
        need = min(cost, self.capacity)
        ahead = self.updated - now  # > 0 when takes are already scheduled in the future
        return ahead + (0.0 if self.level >= need else (need - self.level) / self.rate)

    def take(self, cost: float, when: float) -> None:
        """Take `cost` at time `when` (now, or the future time `wait_s` said)."""
        self._refill(when)
        self.level -= cost

    def give_back(self, amount: float, now: float) -> None:
        """Correct an estimate (negative `amount` charges more); the level never exceeds capacity."""
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)

    def drain(self, now: float) -> None:
        self._refill(now)
        self.level = min(self.level, 0.0)


def _per_window(per_minute: int, limits: ProviderLimits) -> float:
    return per_minute * limits.window_s / 60.0


class RateBuckets:
    """The provider's limits as buckets; `grant` answers a FIFO batch of costs."""

    def __init__(self, limits: ProviderLimits, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        now = clock()
        make = lambda per_minute: (TokenBucket(_per_window(per_minute, limits), limits.window_s, limits.headroom,
                                               limits.jitter_s, now) if per_minute else None)
        self.requests = make(limits.requests_per_minute)
        self.input_tokens = make(limits.input_tokens_per_minute)
        self.output_tokens = make(limits.output_tokens_per_minute)
        self.blocked_until = 0.0
        self.granted = 0
        self.throttles = 0

    def _pairs(self, cost: Cost):
        return [(b, c) for b, c in ((self.requests, cost.requests), (self.input_tokens, cost.input_tokens),
                                    (self.output_tokens, cost.output_tokens)) if b is not None]

    def grant(self, costs: list[Cost], ahead_s: float = 0.0) -> tuple[list[float], float]:
        """Grant a prefix of `costs` in order: (for each granted one, seconds from now until it may go;
        seconds until asking again is worth it). Nothing is scheduled more than `ahead_s` ahead."""
        now = self.clock()
        if now < self.blocked_until:
            return [], self.blocked_until - now
        delays: list[float] = []
        for cost in costs:
            wait = max((bucket.wait_s(c, now) for bucket, c in self._pairs(cost)), default=0.0)
            if wait > ahead_s:
                return delays, wait - ahead_s
            for bucket, c in self._pairs(cost):
                bucket.take(c, now + wait)
            delays.append(wait)
            self.granted += 1
        return delays, 0.0

    def settle_output(self, overestimate: int) -> None:
        """The reply used `overestimate` fewer output tokens than reserved (negative: more)."""
        if self.output_tokens is not None and overestimate:
            self.output_tokens.give_back(overestimate, self.clock())

    def throttled(self, retry_after_s: float | None) -> None:
        """The server said 429: stop granting until it said to retry, and spend any burst left."""
        now = self.clock()
        self.throttles += 1
        if retry_after_s:
            self.blocked_until = max(self.blocked_until, now + retry_after_s)
        for bucket in (self.requests, self.input_tokens, self.output_tokens):
            if bucket is not None:
                bucket.drain(now)


class RequestGate(Protocol):
    """What a backend awaits before each attempt and tells after it."""

    async def acquire(self, cost: Cost) -> None: ...

    def settle_output(self, overestimate: int) -> None: ...

    def throttled(self, retry_after_s: float | None) -> None: ...


class OpenGate:
    """No limits: every attempt goes at once."""

    async def acquire(self, cost: Cost) -> None:
        return None

    def settle_output(self, overestimate: int) -> None:
        return None

    def throttled(self, retry_after_s: float | None) -> None:
        return None


GrantFn = Callable[[list[Cost], int], Awaitable[tuple[list[float], float]]]


class BatchingGate:
    """All waiting attempts of this process are granted through one `grant_fn` call per round.

    `grant_fn(costs, settled_output)` first credits the output tokens reserved but not used since the
    last round (they ride along instead of costing a call each), then returns (for a prefix of `costs`,
    the delay after which each may go; seconds until asking again is worth it). One round is in flight
    at a time; requests that arrive meanwhile join the next. A 429 is reported at once (`throttled_fn`).
    """

    def __init__(self, grant_fn: GrantFn, throttled_fn: Callable[[float | None], None], max_batch: int = 512):
        self._grant_fn = grant_fn
        self.throttled = throttled_fn
        self._max_batch = max_batch
        self._waiting: deque[tuple[Cost, asyncio.Future]] = deque()
        self._pump: asyncio.Task | None = None
        self._settled = 0
        self.rounds = 0

    def settle_output(self, overestimate: int) -> None:
        self._settled += overestimate

    async def acquire(self, cost: Cost) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((cost, future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._run())
        await future

    async def _run(self) -> None:
        while self._waiting:
            while self._waiting and self._waiting[0][1].done():  # cancelled while waiting
                self._waiting.popleft()
            batch = [cost for cost, _ in list(self._waiting)[:self._max_batch]]
            if not batch:
                return
            self.rounds += 1
            settled, self._settled = self._settled, 0
            try:
                delays, wait_s = await self._grant_fn(batch, settled)
            except Exception as error:  # the limiter is gone: fail the waiters, do not hang them
                while self._waiting:
                    _, future = self._waiting.popleft()
                    if not future.done():
                        future.set_exception(error)
                return
            loop = asyncio.get_running_loop()
            for delay in delays:
                _, future = self._waiting.popleft()
                if delay <= 0:
                    _release(future)
                else:
                    loop.call_later(delay, _release, future)
            if len(delays) < len(batch):
                await asyncio.sleep(max(wait_s, 0.001))


def _release(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def local_gate(limits: ProviderLimits, clock: Callable[[], float] = time.monotonic) -> RequestGate:
    """A gate on in-process buckets (one process, or tests); the open gate when no limit is set."""
    if not limits.active:
        return OpenGate()
    buckets = RateBuckets(limits, clock)

    async def grant(costs: list[Cost], settled_output: int) -> tuple[list[float], float]:
        buckets.settle_output(settled_output)
        return buckets.grant(costs, SCHEDULE_AHEAD_S)

    gate = BatchingGate(grant, buckets.throttled)
    gate.buckets = buckets  # for inspection
    return gate


class AdaptiveConcurrency:
    """Requests in flight under an AIMD limit between `minimum` and `maximum`.

    A 429 halves the limit, at most once per round trip: only a request that started after the last
    decrease can cause the next one, so one wave of 429s counts once. Each success adds 1/limit
    (about +1 per round trip of successes).
    """

    def __init__(self, maximum: int, minimum: int = 1, enabled: bool = True):
        self.maximum = maximum
        self.minimum = min(minimum, maximum)
        self.enabled = enabled
        self.limit = float(maximum)
        self.in_flight = 0
        self.epoch = 0
        self.decreases = 0
        self._changed: asyncio.Condition | None = None  # made inside the loop that uses it

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one in-flight slot; yields the epoch to pass to `throttled`."""
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
        try:
            yield self.epoch
        finally:
            async with changed:
                self.in_flight -= 1
                changed.notify_all()

    def succeeded(self) -> None:
        if self.enabled and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)

    def throttled(self, started_epoch: int) -> None:
        if self.enabled and started_epoch == self.epoch:
            self.limit = max(float(self.minimum), self.limit / 2)
            self.epoch += 1
            self.decreases += 1

"""Rate-limit arithmetic with a fake clock, the batching gate, AIMD, and the OpenAI backend under a real RPM limit.

Run: .venv/bin/pytest tests/test_rate_limiter.py
"""

from __future__ import annotations

import asyncio
import bisect

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from configs.teacher_schema import ProviderLimits, TeacherConfig
from generation.teachers.base import TeacherRequest, complete_many
from generation.teachers.limits import AdaptiveConcurrency, Cost, RateBuckets, TokenBucket, local_gate
from generation.teachers.openai_backend import OpenAIBackend
from teacher_server import running_server


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(limits: ProviderLimits, arrivals: list[tuple[float, Cost]], horizon_s: float,
             ahead_s: float = 0.0) -> list[tuple[float, Cost]]:
    """Grant FIFO demand as a gate would: ask, then sleep as long as the buckets say; returns the times
    at which granted requests may go (scheduled ones in the future)."""
    clock = FakeClock()
    buckets = RateBuckets(limits, clock)
    pending: list[Cost] = []
    granted: list[tuple[float, Cost]] = []
    arrivals = sorted(arrivals, key=lambda a: a[0])
    i = 0
    while clock.now <= horizon_s and (i < len(arrivals) or pending):
        while i < len(arrivals) and arrivals[i][0] <= clock.now:
            pending.append(arrivals[i][1])
            i += 1
        delays, wait = buckets.grant(pending, ahead_s)
        granted += [(clock.now + d, c) for d, c in zip(delays, pending)]
        pending = pending[len(delays):]
        next_arrival = arrivals[i][0] if i < len(arrivals) else float("inf")
        step = wait if pending else float("inf")
        clock.now = min(clock.now + max(step, 1e-6), next_arrival) if pending else next_arrival
    return sorted(granted, key=lambda g: g[0])


def max_in_window(times_and_amounts: list[tuple[float, float]], window: float) -> float:
    times = [t for t, _ in times_and_amounts]
    prefix = [0.0]
    for _, amount in times_and_amounts:
        prefix.append(prefix[-1] + amount)
    best = 0.0
    for j, (t, _) in enumerate(times_and_amounts):  # windows [t - window, t] ending at each grant
        start = bisect.bisect_right(times, t - window)
        best = max(best, prefix[j + 1] - prefix[start])
    return best


@settings(max_examples=40, deadline=None)
@given(rpm=st.integers(2, 5000), window_s=st.sampled_from([1.0, 10.0, 60.0]),
       headroom=st.sampled_from([0.0, 0.05, 0.2]), ahead_s=st.sampled_from([0.0, 1.0]),
       bursts=st.lists(st.tuples(st.floats(0, 120), st.integers(1, 300)), min_size=1, max_size=8))
def test_no_window_ever_holds_more_requests_than_the_limit(rpm, window_s, headroom, ahead_s, bursts):
    assume(rpm * window_s / 60 >= 2)
    limits = ProviderLimits(requests_per_minute=rpm, window_s=window_s, headroom=headroom, jitter_s=0.2)
    arrivals = [(t, Cost()) for t, n in bursts for _ in range(n)]
    granted = simulate(limits, arrivals, horizon_s=400, ahead_s=ahead_s)
    per_window = rpm * window_s / 60
    # the server counts arrivals; those may bunch up by jitter_s, so check windows of window_s + jitter_s too
    assert max_in_window([(t, 1) for t, _ in granted], window_s + 0.2) <= per_window + 1e-9


def test_saturated_demand_gets_the_limit_minus_headroom():
    limits = ProviderLimits(requests_per_minute=600, window_s=60, headroom=0.05)
    for ahead_s in (0.0, 1.0):
        granted = simulate(limits, [(0.0, Cost())] * 3000, horizon_s=300, ahead_s=ahead_s)
        rate = (len(granted) - 1) / (granted[-1][0] - granted[0][0])
        assert 0.95 * 10 <= rate <= 10.0  # 600 RPM = 10/s


def test_token_limits_let_a_huge_prompt_through_and_keep_the_long_run_rate():
    limits = ProviderLimits(input_tokens_per_minute=6000, window_s=60, headroom=0.05)  # 100 tokens/s
    bucket = RateBuckets(limits, FakeClock()).input_tokens
    assert bucket.capacity < 5000
    granted = simulate(limits, [(0.0, Cost(1, 5000, 0))] * 6, horizon_s=1000)
    assert len(granted) == 6  # bigger than the bucket, granted anyway (as debt)
    spent_per_s = 5 * 5000 / (granted[-1][0] - granted[0][0])
    assert spent_per_s <= 100.0 + 1e-6


def test_output_reservations_are_settled_and_429_blocks_everyone():
    clock = FakeClock()
    buckets = RateBuckets(ProviderLimits(requests_per_minute=600, output_tokens_per_minute=600), clock)
    level = buckets.output_tokens.level
    assert buckets.grant([Cost(1, 0, 10)]) == ([0.0], 0.0)
    buckets.settle_output(8)  # reserved 10, used 2
    assert buckets.output_tokens.level == pytest.approx(level - 2)
    buckets.throttled(retry_after_s=5.0)
    delays, wait = buckets.grant([Cost()])
    assert (delays, wait) == ([], pytest.approx(5.0))
    clock.now = 5.0
    assert buckets.grant([Cost()]) == ([0.0], 0.0)  # unblocked (and refilled meanwhile)
    buckets.throttled(retry_after_s=None)  # a 429 without Retry-After still spends the burst left
    assert buckets.grant([Cost()], ahead_s=1.0)[0] == [pytest.approx(1 / buckets.requests.rate)]


def test_grants_are_scheduled_ahead_instead_of_polled():
    clock = FakeClock()
    buckets = RateBuckets(ProviderLimits(requests_per_minute=600, window_s=60, headroom=0.05), clock)
    rate = buckets.requests.rate
    delays, wait = buckets.grant([Cost()] * 40, ahead_s=1.0)
    burst = int(buckets.requests.capacity)
    assert delays[:burst] == [0.0] * burst
    later = delays[burst:]
    assert later == sorted(later) and later[-1] <= 1.0 and later[1] - later[0] == pytest.approx(1 / rate)
    assert len(delays) < 40 and wait == pytest.approx(1 / rate - (1.0 - later[-1]), abs=1e-9) or wait > 0


def test_limits_that_leave_no_rate_are_refused():
    with pytest.raises(ValueError, match="fewer than 2 per window"):
        ProviderLimits(requests_per_minute=2, window_s=1)
    with pytest.raises(ValueError, match="limit must be > 0"):
        TokenBucket(0, 60, 0.05, 0.2, 0.0)
    with pytest.raises(ValueError, match="leaves no rate"):
        TokenBucket(1, 60, 0.05, 0.2, 0.0)


def test_batching_gate_grants_in_order_with_few_rounds():
    clock = FakeClock()

    async def go():
        gate = local_gate(ProviderLimits(requests_per_minute=60 * 1000, window_s=1), clock)  # burst 25
        order = []

        async def ask(i):
            await gate.acquire(Cost())
            order.append(i)

        tasks = [asyncio.ensure_future(ask(i)) for i in range(100)]
        while not all(t.done() for t in tasks):
            clock.now += 0.05
            await asyncio.sleep(0)
        return gate, order

    gate, order = asyncio.run(go())
    assert order == list(range(100))
    # one call granted the whole batch: 25 at once, the rest scheduled within the next second
    assert gate.rounds == 1 and gate.buckets.granted == 100


def test_aimd_halves_once_per_round_trip_and_regrows():
    limit = AdaptiveConcurrency(maximum=32, minimum=2)
    epoch = limit.epoch
    for _ in range(10):  # one wave of 429s from requests that all started before the cut
        limit.throttled(epoch)
    assert limit.limit == 16 and limit.decreases == 1
    limit.throttled(limit.epoch)
    assert limit.limit == 8
    for _ in range(5):
        limit.throttled(limit.epoch)
    assert limit.limit == 2  # never below the minimum
    for _ in range(100):  # +1 per round trip: after 100 successes about sqrt(2 * 100) more
        limit.succeeded()
    assert 10 < limit.limit < 20
    for _ in range(600):
        limit.succeeded()
    assert limit.limit == 32
    assert AdaptiveConcurrency(8, enabled=False).limit == 8


def test_aimd_caps_requests_in_flight():
    async def go():
        limit = AdaptiveConcurrency(maximum=4)
        limit.throttled(limit.epoch)  # now 2
        peak = 0

        async def one():
            nonlocal peak
            async with limit.slot():
                peak = max(peak, limit.in_flight)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(one() for _ in range(20)))
        return peak

    assert asyncio.run(go()) == 2


def _ask_many(cfg: TeacherConfig, n: int, gate=None):
    async def go():
        backend = OpenAIBackend(cfg, gate=gate)
        try:
            requests = [TeacherRequest(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(n)]
            return await complete_many(backend, requests, concurrency=64), backend
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_backend_with_the_limiter_never_meets_the_servers_rpm():
    # the server allows 20 requests per 1 s window; 64 in flight would send far more without the limiter
    with running_server(rpm=20, rate_window_s=1.0, latency_s=0.01) as server:
        limits = ProviderLimits(requests_per_minute=1200, window_s=1.0)
        cfg = TeacherConfig(backend="openai", base_url=server.url, model="m", concurrency=64, max_retries=0,
                            limits=limits)
        replies, backend = _ask_many(cfg, 40, gate=local_gate(limits))
        assert [r.text for r in replies] == [f"question {i}" for i in range(40)]
        stats = server.stats()
        assert stats.get("rate_limited", 0) == 0 and stats["ok"] == 40
        assert backend.meter.totals["api_calls"] == 40


def test_backend_backs_off_on_429s_and_still_finishes():
    with running_server(rpm=10, rate_window_s=1.0, latency_s=0.01) as server:
        cfg = TeacherConfig(backend="openai", base_url=server.url, model="m", concurrency=32, max_retries=20,
                            backoff_initial_s=0.05, backoff_max_s=0.5)
        replies, backend = _ask_many(cfg, 30)
        assert all(hasattr(r, "text") for r in replies)
        assert server.stats()["rate_limited"] > 0
        assert backend.slots.decreases >= 1 and backend.slots.limit < 32
        assert backend.meter.errors["rate_limited"] == server.stats()["rate_limited"]

"""Counting what the teacher did and what it cost: one UsageMeter per process, summed by the driver.

Counters are cumulative, so a snapshot sent twice (or late) never double counts: the driver keeps the
latest snapshot of each process and sums them. `usage_delta` turns two snapshots into a task's usage.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

SCALARS = ("requests", "api_calls", "cache_hits", "input_tokens", "output_tokens", "cost_usd",
           "failures", "reasks", "rejections")


class UsageMeter:
    """Counts of one process. `requests` are logical asks (cache hits included); `api_calls` are HTTP
    attempts (retries included); tokens and dollars are billed ones only (cache hits cost nothing)."""

    def __init__(self, on_change: Callable[[dict[str, Any]], None] | None = None, every_s: float = 1.0):
        self.totals: dict[str, float] = dict.fromkeys(SCALARS, 0)
        self.errors: Counter[str] = Counter()  # per attempt, by kind: rate_limited, timeout, ...
        self.rejected: Counter[str] = Counter()  # per rejection, by reason kind
        self.by_model: dict[str, dict[str, float]] = {}
        self._on_change = on_change
        self._every_s = every_s
        self._last_push = 0.0

    def attempt(self, outcome: str) -> None:
        """One backend call: "ok" or the error kind it failed with."""
        self.totals["api_calls"] += 1
        if outcome != "ok":
            self.errors[outcome] += 1
        self._maybe_push()

    def reply(self, model: str, input_tokens: int, output_tokens: int, cost_usd: float, cached: bool) -> None:
        self.totals["requests"] += 1
        if cached:
            self.totals["cache_hits"] += 1
        else:
            row = self.by_model.setdefault(model, {"requests": 0, "input_tokens": 0, "output_tokens": 0,
                                                   "cost_usd": 0.0})
            for key, value in (("requests", 1), ("input_tokens", input_tokens), ("output_tokens", output_tokens),
                               ("cost_usd", cost_usd)):
                row[key] += value
                if key != "requests":
                    self.totals[key] += value
        self._maybe_push()

    def failure(self) -> None:
        """A logical request that ended in a TeacherError (retries exhausted or not retryable)."""
        self.totals["requests"] += 1
        self.totals["failures"] += 1
        self._maybe_push()

    def reask(self) -> None:
        self.totals["reasks"] += 1

    def rejection(self, reason_kind: str) -> None:
        self.totals["rejections"] += 1
        self.rejected[reason_kind] += 1

    def snapshot(self) -> dict[str, Any]:
        return {**self.totals, "errors": dict(self.errors), "rejected": dict(self.rejected),
                "by_model": {m: dict(v) for m, v in self.by_model.items()}}

    def push(self) -> None:
        """Send the snapshot to the listener now (e.g. at the end of a task)."""
        if self._on_change is not None:
            self._last_push = time.monotonic()
            self._on_change(self.snapshot())

    def _maybe_push(self) -> None:
        if self._on_change is not None and time.monotonic() - self._last_push >= self._every_s:
            self.push()


def add_snapshots(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of several processes' snapshots."""
    total: dict[str, Any] = {**dict.fromkeys(SCALARS, 0), "errors": {}, "rejected": {}, "by_model": {}}
    for snap in snapshots:
        for key in SCALARS:
            total[key] += snap.get(key, 0)
        for group in ("errors", "rejected"):
            for kind, n in snap.get(group, {}).items():
                total[group][kind] = total[group].get(kind, 0) + n
        for model, row in snap.get("by_model", {}).items():
            into = total["by_model"].setdefault(model, {})
            for key, value in row.items():
                into[key] = into.get(key, 0) + value
    return total


def usage_delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What happened between two snapshots of one meter (a task's own usage)."""
    out: dict[str, Any] = {key: after[key] - before.get(key, 0) for key in SCALARS}
    for group in ("errors", "rejected"):
        out[group] = {k: v - before.get(group, {}).get(k, 0) for k, v in after[group].items()
                      if v - before.get(group, {}).get(k, 0)}
    out["by_model"] = {}
    for model, row in after["by_model"].items():
        prev = before.get("by_model", {}).get(model, {})
        diff = {k: v - prev.get(k, 0) for k, v in row.items()}
        if diff.get("requests"):
            out["by_model"][model] = diff
    return out

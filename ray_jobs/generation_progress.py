"""What the generation job shows while it runs and when it ends: a live rich panel, W&B, a summary table.

Figures come from the stats hub (cumulative counters of every worker process): requests/s and
tokens/s over the last `RATE_WINDOW_S`, errors by kind, cache hits, re-asks, rejections, dollars
billed so far, and an ETA from the unit completion rate. Without a terminal (CI, `ray job submit`
logs) the same figures are printed as one line every `PLAIN_EVERY_S` seconds.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

RATE_WINDOW_S = 10.0
PLAIN_EVERY_S = 10.0


def live_figures(totals: dict[str, Any], rates: dict[str, float], units_done: int, units_total: int,
                 eta_s: float | None) -> dict[str, Any]:
    """The flat figures shown and logged (numbers only, so W&B can chart them)."""
    figures = {"units_done": units_done, "units_total": units_total, "requests": totals.get("requests", 0),
               "api_calls": totals.get("api_calls", 0), "cache_hits": totals.get("cache_hits", 0),
               "input_tokens": totals.get("input_tokens", 0), "output_tokens": totals.get("output_tokens", 0),
               "cost_usd": round(totals.get("cost_usd", 0.0), 6), "reasks": totals.get("reasks", 0),
               "rejections": totals.get("rejections", 0), "failures": totals.get("failures", 0), **rates}
    figures.update({f"errors/{kind}": n for kind, n in sorted(totals.get("errors", {}).items())})
    if eta_s is not None:
        figures["eta_s"] = round(eta_s, 1)
    return figures


def _eta(done_now: int, total: int, started: float, now: float) -> float | None:
    if done_now <= 0:
        return None
    return (now - started) / done_now * (total - done_now)


class GenerationProgress:
    """`update(totals, units_done)` as often as you like; it redraws and logs at its own pace."""

    def __init__(self, units_total: int, units_done_before: int, tracker: Any = None, enabled: bool = True,
                 log_every_s: float = 5.0, console: Console | None = None, title: str = "teacher demonstrations"):
        self.console, self.title = console or Console(), title
        self.units_total, self.done_before = units_total, units_done_before
        self.tracker, self.enabled, self.log_every_s = tracker, enabled, log_every_s
        self.started = time.monotonic()
        self._samples: deque[tuple[float, float, float]] = deque()  # (time, requests, tokens)
        self._last_log = self._last_plain = 0.0
        self._live: Live | None = None
        self.figures: dict[str, Any] = {}

    def __enter__(self) -> GenerationProgress:
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def _rates(self, totals: dict[str, Any], now: float) -> dict[str, float]:
        tokens = totals.get("input_tokens", 0) + totals.get("output_tokens", 0)
        self._samples.append((now, totals.get("requests", 0), tokens))
        while len(self._samples) > 2 and self._samples[1][0] < now - RATE_WINDOW_S:
            self._samples.popleft()
        (t0, r0, k0), (t1, r1, k1) = self._samples[0], self._samples[-1]
        span = max(t1 - t0, 1e-9)
        return {"requests_per_s": round((r1 - r0) / span, 2) if t1 > t0 else 0.0,
                "tokens_per_s": round((k1 - k0) / span, 1) if t1 > t0 else 0.0}

    def update(self, totals: dict[str, Any], units_done: int) -> None:
        now = time.monotonic()
        eta = _eta(units_done - self.done_before, self.units_total - self.done_before, self.started, now)
        self.figures = live_figures(totals, self._rates(totals, now), units_done, self.units_total, eta)
        if self._live is not None:
            self._live.update(self._render())
        elif self.enabled and now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            self.console.print(self._plain_line())
        if self.tracker is not None and now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.tracker.log({f"generation/live/{k}": v for k, v in self.figures.items()})

    def _plain_line(self) -> str:
        f = self.figures
        errors = ", ".join(f"{k.split('/', 1)[1]}={v}" for k, v in f.items() if k.startswith("errors/")) or "none"
        eta = f"{f['eta_s']:.0f}s" if "eta_s" in f else "?"
        return (f"{self.title}: units {f['units_done']}/{f['units_total']}  {f['requests_per_s']} req/s  "
                f"{f['tokens_per_s']} tok/s  requests {f['requests']} (cache hits {f['cache_hits']})  "
                f"errors {errors}  re-asks {f['reasks']}  rejections {f['rejections']}  "
                f"${f['cost_usd']:.4f}  ETA {eta}")

    def _render(self) -> Table:
        table = Table(title=self.title, show_header=False, box=None, padding=(0, 2))
        f = self.figures
        if not f:
            table.add_row("starting", f"{self.units_total - self.done_before} units to run")
            return table
        errors = ", ".join(f"{k.split('/', 1)[1]} {v}" for k, v in f.items() if k.startswith("errors/")) or "none"
        eta = f"{f['eta_s']:.0f} s" if "eta_s" in f else "-"
        table.add_row("units", f"{f['units_done']}/{f['units_total']}", "ETA", eta)
        table.add_row("requests/s", f"{f['requests_per_s']}", "tokens/s", f"{f['tokens_per_s']}")
        table.add_row("requests", f"{f['requests']}", "cache hits", f"{f['cache_hits']}")
        table.add_row("API calls", f"{f['api_calls']}", "errors", errors)
        table.add_row("re-asks", f"{f['reasks']}", "rejections", f"{f['rejections']}")
        table.add_row("tokens in/out", f"{f['input_tokens']}/{f['output_tokens']}", "$ so far", f"{f['cost_usd']:.4f}")
        return table


def summary_table(summary: dict[str, Any], title: str = "teacher demonstrations: summary") -> Table:
    """The end-of-job table: totals, then cost per model (this run's billing and the cache's ledger)."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("units", "episodes", "teacher_wins", "stage_records", "samples", "rejections", "teacher_requests",
                "teacher_cache_hits", "teacher_api_calls", "teacher_reasks", "teacher_input_tokens",
                "teacher_output_tokens", "teacher_cost_usd", "wall_s", "requests_per_s"):
        if key in summary:
            value = summary[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    for kind, n in sorted(summary.get("teacher_errors_by_kind", {}).items()):
        table.add_row(f"errors: {kind}", str(n))
    for kind, n in sorted(summary.get("rejections_by_reason", {}).items()):
        table.add_row(f"rejected: {kind}", str(n))
    for model, row in sorted(summary.get("billed_by_model", {}).items()):
        table.add_row(f"ledger {model}", f"{row['requests']} req, {row['input_tokens']}+{row['output_tokens']} tok, "
                                         f"${row['cost_usd']:.4f}")
    return table


USAGE_KEYS = ("requests", "input_tokens", "output_tokens", "errors", "cache_hits", "api_calls", "reasks",
              "cost_usd", "rejections")


def committed_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """The teacher usage of committed units (each a `TeacherService.usage`), summed: `teacher_<key>` and
    the rejections by reason. The same for a fresh and a resumed job: it is read from the manifest."""
    totals: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for usage in usages:
        for key in USAGE_KEYS:
            totals[key] += usage.get(key, 0)
        rejected.update(usage.get("rejected", {}))
    return {"rejections_by_reason": dict(rejected),
            **{f"teacher_{k}": (round(v, 6) if isinstance(v, float) else v) for k, v in totals.items()}}


def run_figures(live: dict[str, Any], billing: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """What this invocation did (a resume counts only its own work); only the wall time when it did nothing."""
    if not live:
        return {"wall_s": round(wall_s, 2)}
    figures = {"wall_s": round(wall_s, 2), "requests_per_s": round(live["requests"] / max(wall_s, 1e-9), 2),
               "run_requests": live["requests"], "run_cache_hits": live["cache_hits"],
               "run_api_calls": live["api_calls"], "run_cost_usd": live["cost_usd"],
               "teacher_errors_by_kind": live["errors"], "billed_by_model": billing,
               **{k: v for k, v in live.items() if k.startswith("limiter_")}}
    if "units_retried" in live:
        figures["units_retried"] = live["units_retried"]
    return figures

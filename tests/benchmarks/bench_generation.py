"""Teacher-request throughput: our client stack vs the ideal, a sequential loop, and a peer (distilabel).

    .venv/bin/pip install -c launch/constraints-cpu.txt -e ".[bench]"    # the peer, once
    .venv/bin/python tests/benchmarks/bench_generation.py                # both scenarios, ~3 min here
    .venv/bin/python tests/benchmarks/bench_generation.py --quick        # fewer requests, no Ray row
    .venv/bin/python tests/benchmarks/bench_generation.py --scenario rpm --rpm 3000 --window 10

The test server (tests/teacher_server.py) runs in its own process with a fixed latency. Two scenarios:
  concurrency  no rate limit: ideal = concurrency / latency
  rpm          the server answers 429 (with Retry-After) past `rpm` per `window` seconds, and every client
               is told the same limit where it can take one: ideal = min(concurrency / latency, rpm / 60)
Rows: ours (OpenAIBackend + rate limiter + SQLite response cache, one process), ours on Ray (actors sharing
the cluster limiter actor and the cache file), a sequential loop (the seed papers' scripts: one request
after another on the sync client), and distilabel's OpenAILLM the way a pipeline step drives it (batches of
`concurrency` inputs gathered at once; it has no RPM setting, so it relies on the SDK's retries).
"cores" is client CPU seconds per wall second: near the machine's core count (minus the server's share),
the client machine is the bottleneck, not the limits. Each system runs in its own process; client CPU
ms/request is that process's user+system time during the run (for the Ray row: its actor processes, not
the driver or the limiter actor). Requests are single-turn prompts the server echoes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _prompts(n: int, tag: str) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"{tag} question number {i} please answer briefly"}] for i in range(n)]


def _teacher_cfg(url: str, concurrency: int, rpm: int, window: float):
    from configs.teacher_schema import ProviderLimits, TeacherConfig

    limits = ProviderLimits(requests_per_minute=rpm, window_s=window) if rpm else ProviderLimits()
    return TeacherConfig(backend="openai", base_url=url, model="bench", concurrency=concurrency, max_tokens=32,
                         max_retries=10, backoff_initial_s=0.1, backoff_max_s=2.0, timeout_s=60, limits=limits)


async def _ours_requests(cfg, gate, cache_path: str, prompts, concurrency: int) -> int:
    from generation.storage.cache import ResponseCache
    from generation.teachers.base import TeacherRequest, complete_many
    from generation.teachers.stack import build_teacher_stack

    teacher = build_teacher_stack(cfg, cache=ResponseCache(cache_path), gate=gate)
    try:
        replies = await complete_many(teacher, [TeacherRequest(messages=m) for m in prompts], concurrency)
    finally:
        await teacher.aclose()
    return sum(hasattr(r, "text") for r in replies)


def _import_client_stack() -> None:
    """Imports paid before the clock starts (the peer's are too)."""
    import generation.storage.cache  # noqa: F401
    import generation.teachers.openai_backend  # noqa: F401
    import generation.teachers.stack  # noqa: F401


def run_ours(args) -> dict:
    from generation.teachers.limits import local_gate

    _import_client_stack()
    cfg = _teacher_cfg(args.url, args.concurrency, args.rpm, args.window)
    prompts = _prompts(args.requests, "ours")
    cache = Path(tempfile.mkdtemp()) / "cache.sqlite"
    cpu, started = _cpu_s(), time.perf_counter()
    ok = asyncio.run(_ours_requests(cfg, local_gate(cfg.limits), str(cache), prompts, args.concurrency))
    return {"ok": ok, "wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu}


class _BenchActor:
    def __init__(self, cfg, gate_factory, cache_path: str):
        self.cfg, self.gate_factory, self.cache_path = cfg, gate_factory, cache_path

    def ready(self) -> float:
        _import_client_stack()
        return _cpu_s()

    def run(self, prompts, concurrency: int) -> tuple[int, float]:
        ok = asyncio.run(_ours_requests(self.cfg, self.gate_factory(), self.cache_path, prompts, concurrency))
        return ok, _cpu_s()


def run_ours_ray(args) -> dict:
    import ray

    from ray_jobs.rate_limiter import ClusterGate, start_limiter

    ray.init(num_cpus=args.actors, include_dashboard=False, configure_logging=False, log_to_driver=False)
    cfg = _teacher_cfg(args.url, args.concurrency // args.actors, args.rpm, args.window)
    limiter = start_limiter(cfg.limits, "bench-limiter") if cfg.limits.active else None
    gate = ClusterGate(limiter) if limiter is not None else (lambda: None)
    cache = str(Path(tempfile.mkdtemp()) / "cache.sqlite")
    Actor = ray.remote(num_cpus=1)(_BenchActor)
    actors = [Actor.remote(cfg, gate, cache) for _ in range(args.actors)]
    cpu_before = sum(ray.get([a.ready.remote() for a in actors]))
    if limiter is not None:
        ray.get(limiter.stats.remote())  # started before the clock starts
    prompts = _prompts(args.requests, "ray")
    started = time.perf_counter()
    parts = ray.get([a.run.remote(prompts[i::args.actors], args.concurrency // args.actors)
                     for i, a in enumerate(actors)])
    wall = time.perf_counter() - started
    ray.shutdown()
    return {"ok": sum(p[0] for p in parts), "wall_s": wall, "cpu_s": sum(p[1] for p in parts) - cpu_before}


def run_sequential(args) -> dict:
    import openai

    client = openai.OpenAI(base_url=args.url, api_key="bench", max_retries=10)
    prompts = _prompts(args.requests, "seq")
    cpu, started, ok = _cpu_s(), time.perf_counter(), 0
    for messages in prompts:
        reply = client.chat.completions.create(model="bench", messages=messages, max_tokens=32)
        ok += bool(reply.choices[0].message.content)
    return {"ok": ok, "wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu}


def run_distilabel(args) -> dict:
    from distilabel.models.llms import OpenAILLM

    llm = OpenAILLM(model="bench", base_url=args.url, api_key="bench", max_retries=10, timeout=60)
    llm.load()
    prompts = _prompts(args.requests, "distilabel")
    cpu, started, ok = _cpu_s(), time.perf_counter(), 0
    for i in range(0, len(prompts), args.concurrency):  # one pipeline batch (input_batch_size) at a time
        outputs = llm.generate(inputs=prompts[i:i + args.concurrency], num_generations=1, max_new_tokens=32)
        ok += sum(bool(o["generations"][0]) for o in outputs)
    return {"ok": ok, "wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu}


SYSTEMS = {"ours": run_ours, "ours-ray": run_ours_ray, "sequential": run_sequential, "distilabel": run_distilabel}


def _run_system(name: str, url: str, n: int, concurrency: int, rpm: int, window: float, actors: int) -> dict:
    """One system in its own process; returns its figures, or why it could not run."""
    cmd = [sys.executable, __file__, "--worker", name, "--url", url, "--requests", str(n), "--concurrency",
           str(concurrency), "--rpm", str(rpm), "--window", str(window), "--actors", str(actors)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]}
    return json.loads(lines[-1])


def _scenario(server, name: str, args, systems: list[str]) -> list[dict]:
    rpm = args.rpm if name == "rpm" else 0
    ideal = args.concurrency / args.latency if not rpm else min(args.concurrency / args.latency, rpm / 60)
    rows = []
    for system in systems:
        sequential = system == "sequential"
        n = args.sequential_requests if sequential else (args.rpm_requests if rpm else args.requests)
        server.reset(latency_s=args.latency, rpm=int(rpm * args.window / 60), rate_window_s=args.window)
        result = _run_system(system, server.url, n, args.concurrency, rpm, args.window, args.actors)
        stats = server.stats()
        row = {"scenario": name, "system": system, "requests": n, "ideal_req_s": ideal, **result,
               "429s": stats.get("rate_limited", 0), "server_requests": stats.get("requests", 0)}
        if "wall_s" in result:
            row["req_s"] = result["ok"] / result["wall_s"]
            row["of_ideal"] = row["req_s"] / (min(ideal, 1 / args.latency) if sequential else ideal)
            row["cpu_ms_per_req"] = 1000 * result["cpu_s"] / max(result["ok"], 1)
            row["client_cores"] = result["cpu_s"] / result["wall_s"]
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


HEADER = (f"{'scenario':<12}{'system':<12}{'requests':>9}{'req/s':>9}{'ideal':>8}{'% ideal':>9}"
          f"{'CPU ms/req':>11}{'cores':>7}{'429s':>7}  notes")


def _format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['scenario']:<12}{row['system']:<12}{row['requests']:>9}  could not run: {row['error']}"
    ideal = 1 / ARGS.latency if row["system"] == "sequential" else row["ideal_req_s"]
    note = "own ideal: 1/latency" if row["system"] == "sequential" else ""
    return (f"{row['scenario']:<12}{row['system']:<12}{row['requests']:>9}{row['req_s']:>9.1f}{ideal:>8.1f}"
            f"{100 * row['of_ideal']:>8.1f}%{row['cpu_ms_per_req']:>11.2f}{row['client_cores']:>7.2f}{row['429s']:>7}"
            f"  {note}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["concurrency", "rpm", "both"], default="both")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1500, help="per system, concurrency scenario")
    parser.add_argument("--rpm-requests", type=int, default=2000, help="per system, rpm scenario (several windows)")
    parser.add_argument("--sequential-requests", type=int, default=50)
    parser.add_argument("--rpm", type=int, default=3000, help="the rpm scenario's limit (server and clients)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which the server counts")
    parser.add_argument("--actors", type=int, default=2, help="actors of the Ray row")
    parser.add_argument("--systems", default="ours,ours-ray,sequential,distilabel")
    parser.add_argument("--quick", action="store_true", help="fewer requests, 4 s windows, no Ray row")
    parser.add_argument("--json", type=Path, default=None, help="also write every row here")
    parser.add_argument("--worker", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rpm_requests, args.window = 500, 600, 4.0
        args.systems = args.systems.replace("ours-ray,", "")
    return args


def main(argv: list[str] | None = None) -> int:
    global ARGS
    ARGS = args = _parse(argv)
    if args.worker:  # inside one system's own process
        print(json.dumps(SYSTEMS[args.worker](args)))
        return 0
    from teacher_server import running_server

    systems = [s for s in args.systems.split(",") if s]
    scenarios = ["concurrency", "rpm"] if args.scenario == "both" else [args.scenario]
    print(f"latency {args.latency}s, concurrency {args.concurrency}; rpm scenario: {args.rpm} RPM counted over "
          f"{args.window}s windows; requests per system: {args.requests} (concurrency), {args.rpm_requests} (rpm), "
          f"{args.sequential_requests} (sequential); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"cores\n")
    print(HEADER, flush=True)
    rows = []
    with running_server(latency_s=args.latency) as server:
        for scenario in scenarios:
            rows += _scenario(server, scenario, args, systems)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


ARGS: argparse.Namespace
if __name__ == "__main__":
    sys.exit(main())

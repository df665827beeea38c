"""A local OpenAI-compatible chat server with injectable faults, run in its own process.

Alone (prints its base URL, e.g. `http://127.0.0.1:40123/v1`, as the first stdout line):

    .venv/bin/python tests/teacher_server.py --port 0 --latency-s 0.05 --rpm 600
    .venv/bin/python tests/teacher_server.py --port 8000 --faults '{"fail_fraction": 0.1, "seed": 3}'

From tests:

    server = start_server(fail_first=2)      # a ServerHandle; or `with running_server(...) as server:`
    cfg = TeacherConfig(backend="openai", base_url=server.url, ...)
    server.stats()["server_error"] == 2;  server.events();  server.reset(latency_s=0.1);  server.stop()

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /stats (counts by outcome, in-flight high-water
mark), GET /events (the last requests with arrival/answer times and prompt hashes), POST /reset (new
faults, zeroed counts), POST /faults (change some faults, keep every count: `server.set_faults(...)`).
Faults are checked in this order: auth, rate limits, 5xx, hangs, latency, malformed body, garbage reply
(a valid completion whose text is useless), truncated reply (half the text, finish_reason "length"),
then the reply. "First N" faults count requests in arrival order that reached that check.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import importlib
import json
import os
import random
import selectors
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from aiohttp import web

from generation.teachers.base import prompt_hash

MALFORMED_BODY = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"message": {"rol'
GARBAGE_REPLY = "I would rather not choose a function today."
_EVENTS_KEPT = 10_000  # bounded so a load test cannot grow the server without limit


@dataclasses.dataclass
class ServerFaults:
    """What the server does wrong, and how it answers when it does not."""

    model: str = "teacher-server"
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0  # uniform extra latency, so concurrent replies finish out of order
    rpm: int = 0  # requests accepted per `rate_window_s`; 0 = unlimited
    rate_window_s: float = 60.0
    rate_limit_first: int = 0  # the first N requests get 429
    retry_after_s: float = 1.0  # the Retry-After header sent with every 429 from rate_limit_first
    fail_first: int = 0  # the first N requests get `fail_status`
    fail_fraction: float = 0.0
    fail_status: int = 500
    hang_first: int = 0  # the first N requests hang for `hang_s`, then get 504
    hang_fraction: float = 0.0
    hang_s: float = 3600.0
    malformed_first: int = 0  # the first N requests get 200 with a body that is not JSON
    malformed_fraction: float = 0.0
    garbage_first: int = 0  # the first N replies say something useless (GARBAGE_REPLY), finish_reason "stop"
    garbage_fraction: float = 0.0
    truncate_first: int = 0  # the first N replies are cut to half their words, finish_reason "length"
    truncate_fraction: float = 0.0
    require_api_key: str | None = None  # 401 (echoing the key sent, as OpenAI does) when it differs
    script_path: str | None = None  # JSONL of {"prompt_hash" | "messages", "reply"[, "finish_reason"]}
    reply_fn: str | None = None  # "module:function", called as fn(messages, model) -> str
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fail_fraction", "hang_fraction", "malformed_fraction", "garbage_fraction", "truncate_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ServerFaults.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 500 <= self.fail_status <= 599 and self.fail_status not in (408, 409, 429):
            raise ValueError(f"ServerFaults.fail_status must be 5xx, 408, 409 or 429, got {self.fail_status}")
        if self.rate_window_s <= 0:
            raise ValueError(f"ServerFaults.rate_window_s must be > 0, got {self.rate_window_s}")
        if self.script_path and self.reply_fn:
            raise ValueError("ServerFaults: give script_path or reply_fn, not both")


def echo_last_user_message(messages: list[dict[str, Any]], model: str) -> str:
    """The default reply: the content of the last user message, verbatim."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def load_script(path: str) -> dict[str, dict[str, str]]:
    """prompt hash -> {"reply", "finish_reason"} from a JSONL file."""
    script = {}
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if "reply" not in entry or not ({"prompt_hash", "messages"} & set(entry)):
            raise ValueError(f"{path}:{line_no}: each line needs 'reply' and 'prompt_hash' or 'messages'")
        key = entry.get("prompt_hash") or prompt_hash(entry["messages"])
        script[key] = {"reply": entry["reply"], "finish_reason": entry.get("finish_reason", "stop")}
    return script


def _load_reply_fn(spec: str) -> Callable[[list[dict[str, Any]], str], str]:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"reply_fn must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def _openai_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return web.json_response(body, status=status, headers=headers)


class _Run:
    """Faults plus everything counted under them; POST /reset starts a new one."""

    def __init__(self, faults: ServerFaults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.counts: collections.Counter[str] = collections.Counter()
        self.reached: collections.Counter[str] = collections.Counter()  # per fault check, for "first N"
        self.in_flight = 0
        self.max_in_flight = 0
        self.accepted_at: collections.deque[float] = collections.deque()
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=_EVENTS_KEPT)
        self.script = load_script(faults.script_path) if faults.script_path else None
        self.reply_fn = _load_reply_fn(faults.reply_fn) if faults.reply_fn else echo_last_user_message

    def hits(self, check: str, first: int, fraction: float = 0.0) -> bool:
        self.reached[check] += 1
        return self.reached[check] <= first or (fraction > 0 and self.rng.random() < fraction)

    def rpm_wait_s(self, now: float) -> float | None:
        """None when the window has room (and the request is counted), else seconds until it has."""
        window, limit = self.faults.rate_window_s, self.faults.rpm
        if not limit:
            return None
        while self.accepted_at and self.accepted_at[0] <= now - window:
            self.accepted_at.popleft()
        if len(self.accepted_at) >= limit:
            return self.accepted_at[0] + window - now
        self.accepted_at.append(now)
        return None

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight}


class TeacherServer:
    """The aiohttp application; one instance per process."""

    def __init__(self, faults: ServerFaults) -> None:
        self.run = _Run(faults)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", lambda _: web.json_response(self.run.stats()))
        app.router.add_get("/events", lambda _: web.json_response(list(self.run.events)))
        app.router.add_post("/reset", self.reset)
        app.router.add_post("/faults", self.set_faults)
        return app

    async def models(self, _: web.Request) -> web.Response:
        model = {"id": self.run.faults.model, "object": "model", "created": 0, "owned_by": "teacher-server"}
        return web.json_response({"object": "list", "data": [model]})

    async def reset(self, request: web.Request) -> web.Response:
        faults = await request.json() if request.can_read_body else {}
        self.run = _Run(ServerFaults(**faults))
        return web.json_response({"ok": True})

    async def set_faults(self, request: web.Request) -> web.Response:
        changes = await request.json()
        self.run.faults = ServerFaults(**{**dataclasses.asdict(self.run.faults), **changes})
        return web.json_response({"ok": True})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        run = self.run  # a reset during this request must not mix its counts into the new run
        arrived = time.monotonic()
        run.counts["requests"] += 1
        run.in_flight += 1
        run.max_in_flight = max(run.max_in_flight, run.in_flight)
        try:
            outcome, response, digest = await self._answer(run, request)
        finally:
            run.in_flight -= 1
        run.counts[outcome] += 1
        run.events.append(
            {"outcome": outcome, "status": response.status, "arrived": arrived, "answered": time.monotonic(),
             "prompt_hash": digest}
        )
        return response

    async def _answer(self, run: _Run, request: web.Request) -> tuple[str, web.StreamResponse, str | None]:
        faults = run.faults
        try:
            body = await request.json()
            messages = body["messages"]
            digest = prompt_hash({"role": m["role"], "content": _content_text(m["content"])} for m in messages)
        except (ValueError, KeyError, TypeError) as error:
            return "bad_request", _openai_error(400, f"invalid request body: {error!r}", "invalid_request_error"), None
        if faults.require_api_key is not None:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if sent != faults.require_api_key:
                message = f"Incorrect API key provided: {sent}."
                return "unauthorized", _openai_error(401, message, "invalid_api_key"), digest
        if run.hits("rate_limit", faults.rate_limit_first):
            headers = {"Retry-After": _seconds_header(faults.retry_after_s)}
            return "rate_limited", _openai_error(429, "rate limited (first N)", "rate_limit_exceeded", headers), digest
        wait_s = run.rpm_wait_s(time.monotonic())
        if wait_s is not None:
            headers = {"Retry-After": _seconds_header(wait_s)}
            message = f"over {faults.rpm} requests per {faults.rate_window_s}s"
            return "rate_limited", _openai_error(429, message, "rate_limit_exceeded", headers), digest
        if run.hits("fail", faults.fail_first, faults.fail_fraction):
            return "server_error", _openai_error(faults.fail_status, "injected failure", "server_error"), digest
        if run.hits("hang", faults.hang_first, faults.hang_fraction):
            await asyncio.sleep(faults.hang_s)
            return "hung", _openai_error(504, "hung then gave up", "timeout"), digest
        latency = faults.latency_s + (run.rng.uniform(0, faults.latency_jitter_s) if faults.latency_jitter_s else 0.0)
        if latency > 0:
            await asyncio.sleep(latency)
        if run.hits("malformed", faults.malformed_first, faults.malformed_fraction):
            return "malformed", web.Response(text=MALFORMED_BODY, content_type="application/json"), digest
        if run.hits("garbage", faults.garbage_first, faults.garbage_fraction):
            return self._completion(run, body, messages, digest, override=(GARBAGE_REPLY, "garbage"))
        if run.hits("truncate", faults.truncate_first, faults.truncate_fraction):
            return self._completion(run, body, messages, digest, override=(None, "truncate"))
        return self._completion(run, body, messages, digest)

    def _completion(self, run: _Run, body: dict, messages: list, digest: str,
                    override: tuple[str | None, str] | None = None) -> tuple[str, web.Response, str]:
        model = body.get("model") or run.faults.model
        finish_reason = "stop"
        if override is not None and override[1] == "garbage":
            text = override[0]
        elif run.script is not None:
            if digest not in run.script:
                message = f"no scripted reply for prompt hash {digest}"
                return "unscripted", _openai_error(400, message, "invalid_request_error"), digest
            text, finish_reason = run.script[digest]["reply"], run.script[digest]["finish_reason"]
        else:
            text = run.reply_fn(messages, model)
        words = text.split()
        if override is not None and override[1] == "truncate":  # as if max_tokens were half the reply
            words = words[:max(1, len(words) // 2)]
            text, finish_reason = " ".join(words), "length"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if limit and len(words) > limit:  # one word = one token here; truncation mirrors a real length stop
            words = words[:limit]
            text, finish_reason = " ".join(words), "length"
        prompt_tokens = sum(len(_content_text(m.get("content")).split()) for m in messages)
        reply = {
            "id": f"chatcmpl-{run.counts['requests']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason,
                 "logprobs": None}
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                      "total_tokens": prompt_tokens + len(words)},
        }
        outcome = "garbage" if override is not None and override[1] == "garbage" else "ok"
        return ("truncated" if finish_reason == "length" else outcome), web.json_response(reply), digest


def _seconds_header(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up so a client that obeys it is never early."""
    return str(max(1, int(-(-seconds // 1))))


async def serve(host: str, port: int, faults: ServerFaults) -> None:
    """Serve until the process is stopped; the first stdout line is the base URL."""
    runner = web.AppRunner(TeacherServer(faults).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
    await site.start()
    bound_port = runner.addresses[0][1]
    print(f"http://{host}:{bound_port}/v1", flush=True)
    await asyncio.Event().wait()


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, ServerFaults]:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible chat server with injectable faults.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--faults", default="{}", help="ServerFaults as JSON; single flags below override it")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when stdin closes")
    for field in dataclasses.fields(ServerFaults):
        kind = str if field.default is None else type(field.default)
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=kind, default=None)
    args = parser.parse_args(argv)
    names = [field.name for field in dataclasses.fields(ServerFaults)]
    flags = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return args, ServerFaults(**{**json.loads(args.faults), **flags})


def main(argv: list[str] | None = None) -> None:
    args, faults = _parse_args(argv)
    if args.exit_with_parent:  # a killed pytest closes our stdin: do not outlive it
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    asyncio.run(serve(args.host, args.port, faults))


# ---- the test-side handle -------------------------------------------------------------------------


@dataclasses.dataclass
class ServerHandle:
    """A running server process. `url` is the OpenAI base URL (ends in /v1)."""

    url: str
    process: subprocess.Popen
    stderr: Any  # the server's stderr, a temporary file: read it when a test needs to know why

    def stderr_tail(self, chars: int = 4000) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-chars:]

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        """Counts by outcome (ok, truncated, garbage, rate_limited, server_error, hung, malformed, unauthorized,
        bad_request, unscripted), `requests` in all, and `in_flight` / `max_in_flight`."""
        return collections.Counter(self._call("GET", "/stats"))

    def events(self) -> list[dict[str, Any]]:
        return self._call("GET", "/events")

    def reset(self, **faults: Any) -> None:
        ServerFaults(**faults)  # fail here, not in the server, on a bad fault name
        self._call("POST", "/reset", faults)

    def set_faults(self, **changes: Any) -> None:
        """Change some faults now; counts, events and "first N" progress are kept."""
        ServerFaults(**changes)
        self._call("POST", "/faults", changes)

    def answered_per_prompt(self) -> dict[str, int]:
        """How many times each prompt hash got a completion (a billed answer, useful or not), from the events."""
        answered = ("ok", "garbage", "truncated")
        return dict(collections.Counter(e["prompt_hash"] for e in self.events() if e["outcome"] in answered))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            if stream:
                stream.close()

    def _call(self, method: str, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.root + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def start_server(startup_timeout_s: float = 60.0, **faults: Any) -> ServerHandle:
    """Start a server process with these ServerFaults; returns once it accepts connections."""
    validated = ServerFaults(**faults)
    stderr = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--faults", json.dumps(dataclasses.asdict(validated)),
         "--exit-with-parent"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )
    handle = ServerHandle(url="", process=process, stderr=stderr)
    line = _first_line(process, startup_timeout_s)
    if not line.startswith("http://"):
        process.kill()
        process.wait()
        why = handle.stderr_tail()
        handle.stop()
        raise RuntimeError(f"teacher server did not start (exit {process.returncode}):\n{why}")
    handle.url = line.strip()
    return handle


def _first_line(process: subprocess.Popen, timeout_s: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return process.stdout.readline()


@contextmanager
def running_server(**faults: Any) -> Iterator[ServerHandle]:
    handle = start_server(**faults)
    try:
        yield handle
    finally:
        handle.stop()


if __name__ == "__main__":
    main()

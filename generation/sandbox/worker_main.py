"""The sandbox worker process: `python -m generation.sandbox.worker_main`.

Protocol (one JSON object per line on the worker's stdin/stdout; see `runner.Sandbox`):
  parent: {"limits": {...}, "scratch": "/tmp/..."}          worker: {"ok": true, "isolation": {...}}
  parent: {"op": "load", "name": n, "source": s}            worker: {"ok": true} | error
  parent: {"op": "call", "name": n, "state": .., "prev": .., "kwargs": {..}}
                                                            worker: {"ok": true, "result": ..} | error
  error: {"ok": false, "kind": "timeout|memory|forbidden|exception|bad_output", "message": ".."}
The worker hardens itself (hardening.py) before reading the first load request, and
exits when its stdin closes. Stdlib only, so it starts fast and fits in its memory limit.
"""

import json
import linecache
import math
import os
import resource
import signal
import sys
import traceback
from typing import Any, BinaryIO

from generation.sandbox.hardening import harden_process
from generation.sandbox.output_check import BadOutput, encode_output
from generation.sandbox.safe_namespace import SandboxViolation, make_builtins, new_globals, preimport
from generation.sandbox.static_check import find_violations

MAX_MESSAGE_CHARS = 2000
SOURCE_PREFIX = "<sandbox:"


class CpuTimeExceeded(BaseException):
    """Raised into untrusted code by SIGPROF; a BaseException so `except Exception` misses it."""


class CpuGuard:
    """Per-call CPU limit: an ITIMER_PROF signal, plus RLIMIT_CPU as a backstop the
    interpreter cannot catch (a C-level loop, or a worker orphaned mid-call)."""

    def __init__(self, cpu_seconds: float, wall_seconds: float) -> None:
        self.cpu_seconds = cpu_seconds
        self._backstop = math.ceil(cpu_seconds + wall_seconds) + 2
        self.active = False
        signal.signal(signal.SIGPROF, self._on_sigprof)

    def _on_sigprof(self, signum: int, frame: object) -> None:
        if self.active:
            raise CpuTimeExceeded()

    def arm(self) -> None:
        used = math.ceil(time_used())
        resource.setrlimit(resource.RLIMIT_CPU, (used + self._backstop, resource.RLIM_INFINITY))
        self.active = True
        # keeps firing every 50 ms, so code that swallows the first one gets another
        signal.setitimer(signal.ITIMER_PROF, self.cpu_seconds, 0.05)

    def disarm(self) -> None:
        self.active = False
        signal.setitimer(signal.ITIMER_PROF, 0, 0)


def time_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "message": message[:MAX_MESSAGE_CHARS]}


def describe_exception(error: BaseException) -> str:
    """`Type: message`, plus where in the untrusted source it was raised."""
    text = f"{type(error).__name__}: {error}"[:MAX_MESSAGE_CHARS]
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(SOURCE_PREFIX)]
    if frames:
        last = frames[-1]
        text += f" (line {last.lineno} in {last.name}: {(last.line or '').strip()})"
    return text


def _caused_by_cpu_limit(error: BaseException) -> bool:
    seen = 0
    while error is not None and seen < 100:
        if isinstance(error, CpuTimeExceeded):
            return True
        error, seen = error.__context__, seen + 1
    return False


class Worker:
    """Holds the loaded functions and answers requests."""

    def __init__(self, limits: dict[str, Any]) -> None:
        self.limits = limits
        self.allowed_imports = tuple(limits["allowed_imports"])
        self.functions: dict[str, Any] = {}
        self.guard = CpuGuard(limits["cpu_seconds"], limits["wall_seconds"])

    def guarded(self, action) -> dict[str, Any]:
        """Run untrusted `action` under the CPU limit; its return value is the JSON payload."""
        self.guard.arm()
        try:
            try:
                payload = action()
            finally:
                self.guard.disarm()
        except CpuTimeExceeded:
            return _error("timeout", f"timeout after {self.limits['cpu_seconds']} s of CPU time")
        except MemoryError:
            return _error("memory", f"memory limit {self.limits['memory_mb']} MB exceeded")
        except SandboxViolation as error:
            return _error("forbidden", str(error))
        except BadOutput as error:
            return _error("bad_output", str(error))
        except BaseException as error:  # noqa: BLE001 - anything the untrusted code raised
            if _caused_by_cpu_limit(error):  # e.g. a NameError while matching the handler
                return _error("timeout", f"timeout after {self.limits['cpu_seconds']} s of CPU time")
            return _error("exception", describe_exception(error))
        return {"ok": True, "payload": payload}

    def load(self, name: str, source: str) -> dict[str, Any]:
        violations = find_violations(source, entry_points=[name], allowed_imports=self.allowed_imports)
        if violations:
            return _error("forbidden", "; ".join(violations))
        filename = f"{SOURCE_PREFIX}{name}>"
        # mtime None: linecache keeps the entry although no such file exists
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = new_globals(f"sandboxed_{name}", make_builtins(self.allowed_imports))

        def define() -> None:
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - this process is the sandbox
            if not callable(namespace.get(name)):
                raise TypeError(f"{name!r} is not a function after running its source")

        outcome = self.guarded(define)
        if outcome["ok"]:
            self.functions[name] = namespace[name]
        return outcome

    def call(self, name: str, state: Any, prev: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        function = self.functions.get(name)
        if function is None:
            return _error("exception", f"no function named {name!r} is loaded")
        max_bytes = self.limits["max_output_bytes"]
        return self.guarded(lambda: encode_output(function(state, prev, **kwargs), max_bytes))

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "call":
            return self.call(request["name"], request["state"], request.get("prev"), request.get("kwargs") or {})
        if op == "load":
            return self.load(request["name"], request["source"])
        return _error("exception", f"unknown request op {op!r}")


def _send(out: BinaryIO, response: dict[str, Any]) -> None:
    if response.get("ok") and "payload" in response:
        payload = response["payload"]
        line = '{"ok":true,"result":' + payload + "}" if payload is not None else '{"ok":true}'
    else:
        line = json.dumps(response)
    out.write(line.encode("ascii") + b"\n")
    out.flush()


def _take_protocol_pipes() -> tuple[BinaryIO, BinaryIO]:
    """Keep private copies of stdin/stdout for the protocol; point fds 0 and 1 at /dev/null
    so nothing the untrusted code prints can corrupt it."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return proto_in, proto_out


def main() -> None:
    proto_in, proto_out = _take_protocol_pipes()
    init = json.loads(proto_in.readline())
    limits = init["limits"]
    preimport(limits["allowed_imports"])
    worker = Worker(limits)
    isolation = harden_process(memory_mb=limits["memory_mb"], scratch_dir=init["scratch"])
    _send(proto_out, {"ok": True, "isolation": isolation})
    for line in proto_in:
        try:
            response = worker.handle(json.loads(line))
        except CpuTimeExceeded:  # a late SIGPROF landing outside the guarded block
            worker.guard.disarm()
            response = _error("timeout", f"timeout after {limits['cpu_seconds']} s of CPU time")
        except MemoryError:
            response = _error("memory", f"memory limit {limits['memory_mb']} MB exceeded")
        _send(proto_out, response)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""Public API: run teacher-written functions in a persistent, isolated worker process.

    with Sandbox(SandboxLimits()) as sandbox:
        sandbox.load({"move_direct": source})
        action = sandbox.call("move_direct", state, prev=None, target="E1")

Every function is `def name(state, prev, **kwargs)`; arguments and results cross the
process boundary as JSON. A call that times out, exhausts memory or kills the worker
raises `SandboxError`; the worker is then replaced (and the loaded sources replayed)
before the next call, so the host and later calls are unaffected.
"""

import json
import os
import signal
import threading
from typing import Any, Literal

from pydantic import BaseModel, Field

from generation.sandbox.limits import SandboxLimits
from generation.sandbox.static_check import find_violations
from generation.sandbox.worker_client import WorkerDied, WorkerOutputTooLarge, WorkerProcess, WorkerTimeout

ErrorKind = Literal["timeout", "memory", "forbidden", "exception", "bad_output", "crashed"]
ERROR_KINDS: tuple[str, ...] = ("timeout", "memory", "forbidden", "exception", "bad_output", "crashed")
# After these the worker's state is suspect (or it is gone): the next call gets a fresh one.
_REPLACE_WORKER_AFTER = frozenset({"timeout", "memory", "crashed"})


class SandboxError(Exception):
    """A sandboxed load or call failed; `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown sandbox error kind {kind!r}; expected one of {ERROR_KINDS}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __reduce__(self):  # picklable across Ray
        return (SandboxError, (self.kind, self.message))


class Sandbox:
    """A persistent sandbox worker holding a set of loaded functions.

    Thread-safe (calls are serialised). Picklable: a copy carries the limits and loaded
    sources, and starts its own worker on first use (e.g. inside a Ray actor).
    """

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits if limits is not None else SandboxLimits()
        self._sources: dict[str, str] = {}
        self._worker: WorkerProcess | None = None
        self._worker_owner_pid = os.getpid()
        self._lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def __del__(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            try:
                worker.kill()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __getstate__(self) -> dict[str, Any]:
        return {"limits": self.limits, "sources": dict(self._sources)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limits"])
        self._sources = state["sources"]

    @property
    def loaded(self) -> list[str]:
        return list(self._sources)

    @property
    def worker_pid(self) -> int | None:
        """Process id of the current worker (None before it starts or after it was discarded)."""
        return self._worker.pid if self._worker is not None else None

    @property
    def isolation(self) -> dict[str, Any]:
        """What OS isolation the current worker applied (empty before it starts)."""
        return dict(self._worker.isolation) if self._worker is not None else {}

    # loading ---------------------------------------------------------------------------
    def load(self, sources: dict[str, str]) -> None:
        """Add functions (name -> source defining it). Each source is checked statically and
        then run in the worker; raises SandboxError naming the function on the first failure."""
        if not isinstance(sources, dict):
            raise TypeError(f"sources must be a dict of function name -> source, got {type(sources).__name__}")
        for name, source in sources.items():
            violations = find_violations(source, entry_points=[name], allowed_imports=self.limits.allowed_imports)
            if violations:
                raise SandboxError("forbidden", f"function {name!r}: " + "; ".join(violations))
        with self._lock:
            for name, source in sources.items():
                self._ensure_worker()
                self._load_into_worker(name, source)
                self._sources[name] = source

    def _load_into_worker(self, name: str, source: str) -> None:
        try:
            response = self._exchange({"op": "load", "name": name, "source": source})
        except SandboxError as error:
            raise SandboxError(error.kind, f"loading function {name!r}: {error.message}") from None
        if not response["ok"]:
            raise SandboxError(response["kind"], f"loading function {name!r}: {response['message']}")

    def _ensure_worker(self) -> None:
        """Start a worker if there is none (or it died), replaying every loaded source."""
        if self._worker is not None and self._worker_owner_pid != os.getpid():
            self._worker = None  # a forked copy of the host: that worker belongs to the parent
        if self._worker is not None and self._worker.alive:
            return
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        try:
            self._worker = WorkerProcess(self.limits.model_dump())
            self._worker_owner_pid = os.getpid()
        except (WorkerDied, WorkerTimeout, WorkerOutputTooLarge) as error:
            raise SandboxError("crashed", f"sandbox worker failed to start: {error}") from None
        for name, source in self._sources.items():
            self._load_into_worker(name, source)

    # calling ---------------------------------------------------------------------------
    def call(self, name: str, state: Any, /, prev: Any = None, **kwargs: Any) -> Any:
        """Run loaded function `name(state, prev, **kwargs)` and return its JSON result."""
        return self.call_with_kwargs(name, state, prev, kwargs)

    def call_with_kwargs(self, name: str, state: Any, prev: Any, kwargs: dict[str, Any]) -> Any:
        """`call` with the options as a dict (which may then use any key, even `prev`)."""
        if name not in self._sources:
            raise KeyError(f"no function {name!r} is loaded in this sandbox; loaded: {sorted(self._sources)}")
        try:
            line = json.dumps(
                {"op": "call", "name": name, "state": state, "prev": prev, "kwargs": kwargs}, allow_nan=False
            ).encode()
        except (TypeError, ValueError) as error:
            raise TypeError(f"arguments to {name!r} must be JSON data (state, prev, kwargs): {error}") from None
        with self._lock:
            self._ensure_worker()
            response = self._exchange(line)
        if response["ok"]:
            return response.get("result")
        raise SandboxError(response["kind"], response["message"])

    def _exchange(self, message: dict[str, Any] | bytes) -> dict[str, Any]:
        """One request to the live worker; process-level failures become SandboxErrors.
        The caller holds the lock and has ensured a worker."""
        worker = self._worker
        try:
            response = worker.request(message, self.limits.wall_seconds)
            if not response["ok"] and response["kind"] in _REPLACE_WORKER_AFTER:
                worker.kill()
                self._worker = None
            return response
        except WorkerTimeout:
            error = SandboxError("timeout", f"timeout after {self.limits.wall_seconds} s (wall-clock limit)")
        except WorkerOutputTooLarge as problem:
            error = SandboxError("bad_output", str(problem))
        except WorkerDied as death:
            error = _death_error(death, self.limits)
        except (ValueError, KeyError) as problem:  # a garbled answer
            worker.kill()
            error = SandboxError("crashed", f"unreadable answer from the sandbox worker: {problem}")
        self._worker = None
        raise error


def _death_error(death: WorkerDied, limits: SandboxLimits) -> SandboxError:
    if death.returncode == -signal.SIGXCPU:
        return SandboxError("timeout", f"timeout after {limits.cpu_seconds} s of CPU time (killed)")
    return SandboxError("crashed", f"{death}")


class ValidationReport(BaseModel):
    """Whether a teacher-written function may join the function base, and why not."""

    ok: bool
    name: str
    reasons: list[str] = Field(default_factory=list)
    failure_kind: str | None = None
    outputs: list[Any] = Field(default_factory=list)


def validate_function(
    name: str,
    source: str,
    sample_states: list[tuple[dict, Any]],
    limits: SandboxLimits | None = None,
    sample_kwargs: list[dict] | None = None,
) -> ValidationReport:
    """Static check, then run `name` on every (state, prev) sample with every kwargs dict
    in `sample_kwargs` (default: no kwargs), in a fresh worker of its own.

    Stops at the first failing run; `outputs` holds the results of the runs that passed.
    """
    limits = limits if limits is not None else SandboxLimits()
    violations = find_violations(source, entry_points=[name], allowed_imports=limits.allowed_imports)
    if violations:
        return ValidationReport(ok=False, name=name, reasons=violations, failure_kind="forbidden")
    outputs: list[Any] = []
    with Sandbox(limits) as sandbox:
        try:
            sandbox.load({name: source})
        except SandboxError as error:
            return ValidationReport(ok=False, name=name, reasons=[error.message], failure_kind=error.kind)
        for index, (state, prev) in enumerate(sample_states):
            for kwargs in sample_kwargs or [{}]:
                try:
                    outputs.append(sandbox.call_with_kwargs(name, state, prev, kwargs))
                except SandboxError as error:
                    reason = f"sample {index} (kwargs {kwargs}): {error.message}"
                    return ValidationReport(
                        ok=False, name=name, reasons=[reason], failure_kind=error.kind, outputs=outputs
                    )
    return ValidationReport(ok=True, name=name, outputs=outputs)

"""The teacher as the generation job uses it: a backend wrapped with the response cache and the meter.

    backend = build_teacher_stack(cfg, cache=ResponseCache(path), gate=gate, meter=meter, env=..., expert=...)

`CachedTeacher` answers from the cache when it can (a cache hit costs nothing and is counted as such),
asks the backend otherwise and stores the answer before returning it, so a reply the job has seen is
already durable. Two identical requests in flight in one process share one backend call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from configs.teacher_schema import TeacherConfig
from generation.storage.cache import cache_key
from generation.teachers.accounting import UsageMeter
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest


class ReplyStore(Protocol):
    """A response cache as the wrapper sees it: the SQLite file, or a Ray actor's client."""

    async def aget(self, key: str) -> dict[str, Any] | None: ...

    async def aput(self, key: str, entry: dict[str, Any]) -> None: ...


def request_key(request: TeacherRequest, cfg: TeacherConfig) -> str:
    """The cache key of a request as `cfg`'s backend would send it."""
    sampling = {"temperature": cfg.temperature if request.temperature is None else request.temperature,
                "max_tokens": request.max_tokens or cfg.max_tokens}
    meta = request.metadata
    return cache_key(cfg.model, request.messages, sampling, meta.get("template"), meta.get("parser"),
                     meta.get("sample"))


class CachedTeacher(TeacherBackend):
    """Cache (optional) + accounting around any backend."""

    def __init__(self, inner: TeacherBackend, cfg: TeacherConfig, meter: UsageMeter,
                 cache: ReplyStore | None = None):
        self.inner = inner
        self.cfg = cfg
        self.meter = meter
        self.cache = cache
        self._in_flight: dict[str, asyncio.Future] = {}
        # HTTP backends count their own attempts (retries included); offline ones are one call per request
        self._count_attempts = not getattr(inner, "counts_attempts", False)

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        started = time.monotonic()
        key = request_key(request, self.cfg) if self.cache is not None else None
        if key is not None:
            if key in self._in_flight:
                reply = await asyncio.shield(self._in_flight[key])
                return self._hit(request, reply.text, reply.finish_reason, reply.input_tokens, reply.output_tokens,
                                 reply.model, reply.cost_usd, started)
            entry = await self.cache.aget(key)
            if entry is not None:
                return self._hit(request, entry["text"], entry["finish_reason"], entry["input_tokens"],
                                 entry["output_tokens"], entry["model"], entry["cost_usd"], started)
            shared = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            reply = await self._ask(request)
            if key is not None:
                await self.cache.aput(key, {"prompt_hash": request.prompt_hash, "model": reply.model,
                                            "text": reply.text, "finish_reason": reply.finish_reason,
                                            "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                                            "cost_usd": reply.cost_usd})
                shared.set_result(reply)
            return reply
        except BaseException as error:
            if key is not None and not shared.done():
                if isinstance(error, Exception):
                    shared.set_exception(error)
                    shared.exception()  # mark retrieved: followers re-raise it, nobody else must
                else:
                    shared.cancel()
            raise
        finally:
            if key is not None:
                self._in_flight.pop(key, None)

    async def _ask(self, request: TeacherRequest) -> TeacherReply:
        try:
            reply = await self.inner.complete(request)
        except TeacherError as error:
            if self._count_attempts:
                self.meter.attempt(error.kind)
            self.meter.failure()
            raise
        if self._count_attempts:
            self.meter.attempt("ok")
        self.meter.reply(reply.model, reply.input_tokens, reply.output_tokens, reply.cost_usd, cached=False)
        return reply

    def _hit(self, request: TeacherRequest, text: str, finish_reason: str, n_in: int, n_out: int, model: str,
             cost: float, started: float) -> TeacherReply:
        self.meter.reply(model, n_in, n_out, cost, cached=True)
        return TeacherReply(request_id=request.request_id, text=text, finish_reason=finish_reason,
                            input_tokens=n_in, output_tokens=n_out, model=model,
                            latency_s=time.monotonic() - started, attempts=0, cost_usd=cost, cached=True)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class TeacherHooks:
    """How a worker reaches the run's shared services. Made (picklable) by the Ray job; each factory is
    called once inside the worker's own process: the rate-limit gate, the cache, the stats listener."""

    gate: Callable[[], Any] | None = None
    cache: Callable[[], ReplyStore] | None = None
    stats: Callable[[], Callable[[dict[str, Any]], None]] | None = None
    stats_every_s: float = 1.0


def connect_hooks(hooks: TeacherHooks | None) -> dict[str, Any]:
    """Keyword arguments for `build_teacher_stack`: each service reached, or left out."""
    if hooks is None:
        return {"meter": UsageMeter()}
    listener = hooks.stats() if hooks.stats else None
    return {"gate": hooks.gate() if hooks.gate else None, "cache": hooks.cache() if hooks.cache else None,
            "meter": UsageMeter(on_change=listener, every_s=hooks.stats_every_s)}


def build_teacher_stack(cfg: TeacherConfig, *, cache: ReplyStore | None = None, gate=None,
                        meter: UsageMeter | None = None, **context: Any) -> CachedTeacher:
    """The configured backend (rate-limited by `gate` where it speaks HTTP), metered, cached if `cache`."""
    from generation.teachers.registry import build_teacher

    meter = meter or UsageMeter()
    return CachedTeacher(build_teacher(cfg, gate=gate, meter=meter, **context), cfg, meter, cache)

"""The teacher interface: one request in, one reply (or a typed error) out, always async.

Every backend (openai, expert, replay, hf) implements `TeacherBackend.complete`;
`complete_many` runs a batch with bounded concurrency and keeps the input order.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Literal

if TYPE_CHECKING:
    from configs.teacher_schema import TeacherConfig

ROLES = ("system", "user", "assistant")

ErrorKind = Literal[
    "rate_limited",  # 429
    "server_error",  # 5xx
    "timeout",  # our per-request timeout, or 408
    "connection",  # refused, reset, DNS
    "conflict",  # 409
    "bad_response",  # 2xx whose body is not a usable chat completion
    "auth",  # 401/403, or the key's environment variable is missing
    "not_found",  # 404: wrong base_url or model
    "bad_request",  # 400/422 and other 4xx
]
RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limited", "server_error", "timeout", "connection", "conflict"})


def prompt_hash(messages: Iterable[dict[str, str]]) -> str:
    """A stable id of a chat prompt (roles and contents only), used to script and replay replies."""
    canonical = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class TeacherRequest:
    """One chat completion to ask for. `None` temperature/max_tokens mean the backend config's values."""

    messages: list[dict[str, str]]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    temperature: float | None = None
    max_tokens: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError(f"TeacherRequest {self.request_id}: messages is empty")
        for i, message in enumerate(self.messages):
            if set(message) != {"role", "content"}:
                raise ValueError(
                    f"TeacherRequest {self.request_id}: message {i} must have exactly the keys role and content, "
                    f"got {sorted(message)}"
                )
            if message["role"] not in ROLES:
                raise ValueError(
                    f"TeacherRequest {self.request_id}: message {i} has role {message['role']!r}, "
                    f"expected one of {ROLES}"
                )
            if not isinstance(message["content"], str):
                raise ValueError(f"TeacherRequest {self.request_id}: message {i} content must be a string")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"TeacherRequest {self.request_id}: max_tokens must be >= 1, got {self.max_tokens}")

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(self.messages)


@dataclass
class TeacherReply:
    """What the teacher said, with the accounting needed for cost tables.

    `latency_s` covers the whole `complete` call, retries and waits included; `attempts` counts HTTP tries.
    """

    request_id: str
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    model: str
    latency_s: float
    attempts: int = 1
    cost_usd: float = 0.0
    cached: bool = False  # served from the response cache: not billed again

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class TeacherError(Exception):
    """A request that failed for good (retries exhausted, or an error not worth retrying).

    Messages never contain the API key; backends scrub it before raising.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.request_id = request_id
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __reduce__(self):  # keyword-only fields must survive pickling across Ray actors
        return (_rebuild_teacher_error, (self.kind, self.message, self.__dict__.copy()))


def _rebuild_teacher_error(kind: ErrorKind, message: str, state: dict[str, Any]) -> TeacherError:
    error = TeacherError(kind, message)
    error.__dict__.update(state)
    return error


def price_per_1k(cfg: TeacherConfig, model: str | None = None) -> tuple[float, float]:
    """(input, output) dollars per 1k tokens of `model`: its entry in `cfg.prices`, else the longest
    listed name it starts with (served names carry date suffixes), else the config's default prices."""
    name = model or cfg.model
    for candidate in (name, cfg.model):
        if candidate in cfg.prices:
            price = cfg.prices[candidate]
            return price.input_per_1k, price.output_per_1k
        prefixes = [key for key in cfg.prices if candidate.startswith(key)]
        if prefixes:
            price = cfg.prices[max(prefixes, key=len)]
            return price.input_per_1k, price.output_per_1k
    return cfg.price_per_1k_input, cfg.price_per_1k_output


def cost_usd(input_tokens: int, output_tokens: int, cfg: TeacherConfig, model: str | None = None) -> float:
    """Dollar cost of one call at the price of `model` (default: the configured model)."""
    per_in, per_out = price_per_1k(cfg, model)
    return (input_tokens * per_in + output_tokens * per_out) / 1000.0


class TeacherBackend(abc.ABC):
    """An async teacher. Use as `async with build_teacher(cfg) as teacher: await teacher.complete(req)`."""

    @abc.abstractmethod
    async def complete(self, request: TeacherRequest) -> TeacherReply:
        """Answer one request, or raise TeacherError."""

    async def aclose(self) -> None:
        """Release connections; backends without any keep this no-op."""

    async def __aenter__(self) -> TeacherBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def complete_many(
    backend: TeacherBackend, requests: list[TeacherRequest], concurrency: int
) -> list[TeacherReply | TeacherError]:
    """Answer all requests with at most `concurrency` in flight; result i belongs to request i.

    A TeacherError is returned in place; any other exception is a bug and cancels the batch.
    """
    if concurrency < 1:
        raise ValueError(f"complete_many: concurrency must be >= 1, got {concurrency}")
    slots = asyncio.Semaphore(concurrency)

    async def one(request: TeacherRequest) -> TeacherReply | TeacherError:
        async with slots:
            try:
                return await backend.complete(request)
            except TeacherError as error:
                return error

    tasks = [asyncio.ensure_future(one(request)) for request in requests]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()  # no-op on finished tasks; stops the rest when one raised

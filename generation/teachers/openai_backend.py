"""A teacher behind any OpenAI-compatible chat API (OpenAI, vLLM, SGLang, llama.cpp, the test server).

Retries are ours (tenacity), never the SDK's, so the two cannot stack: exponential backoff with full
jitter on connection errors, timeouts, 408, 409, 429 and 5xx, waiting what `Retry-After` asks when the
server says. Other 4xx fail at once. The API key is read once from the environment and scrubbed from
every error message.

Every attempt first takes a permit from the request gate (the cluster-wide RPM/TPM limiter, or an open
gate) inside an adaptive in-flight slot (AIMD: halved on a 429). Every attempt is counted by the meter.
"""

from __future__ import annotations

import email.utils
import os
import random
import time

import openai
from openai.types.chat import ChatCompletion
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from configs.teacher_schema import TeacherConfig
from generation.teachers.accounting import UsageMeter
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, cost_usd
from generation.teachers.limits import AdaptiveConcurrency, Cost, OpenGate, RequestGate, estimate_tokens

# A local server without auth still needs a non-empty key: the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "no-key-local-server"
_BODY_SNIPPET_CHARS = 300


def read_api_key(api_key_env: str | None) -> str:
    """The key from `os.environ[api_key_env]`; errors name the variable, never show a value."""
    if api_key_env is None:
        return PLACEHOLDER_API_KEY
    key = os.environ.get(api_key_env, "")
    if not key.strip():
        state = "is empty" if api_key_env in os.environ else "is not set"
        raise TeacherError(
            "auth", f"environment variable {api_key_env} (teacher.api_key_env) {state}; export the API key in it"
        )
    return key.strip()


def retry_after_seconds(headers: object) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _kind_of_status(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status == 408:
        return "timeout"
    if status == 409:
        return "conflict"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    return "bad_request"


class _RetryAfterOrBackoff:
    """tenacity wait: the server's Retry-After (plus a little jitter against herds), else full-jitter backoff."""

    def __init__(self, cfg: TeacherConfig) -> None:
        self._backoff = wait_random_exponential(multiplier=cfg.backoff_initial_s, max=cfg.backoff_max_s)
        self._herd_jitter_s = min(cfg.backoff_initial_s, 1.0)

    def __call__(self, retry_state) -> float:
        error = retry_state.outcome.exception()
        if isinstance(error, TeacherError) and error.retry_after_s is not None:
            return error.retry_after_s + random.uniform(0.0, self._herd_jitter_s)
        return self._backoff(retry_state)


class _OutputEstimate:
    """Output tokens to reserve against an output-TPM limit: a running mean of real replies (x1.25),
    the request's max_tokens until the first reply is in; settled against the real count afterwards."""

    def __init__(self) -> None:
        self.mean: float | None = None

    def reserve(self, max_tokens: int) -> int:
        return max_tokens if self.mean is None else min(max_tokens, int(self.mean * 1.25) + 1)

    def observe(self, output_tokens: int) -> None:
        self.mean = output_tokens if self.mean is None else 0.9 * self.mean + 0.1 * output_tokens


class OpenAIBackend(TeacherBackend):
    """`complete` sends one chat completion, retrying transient failures; at most `cfg.concurrency` in flight
    (fewer while the adaptive limit is backing off after 429s)."""

    counts_attempts = True  # the meter sees every HTTP try, retries included

    def __init__(self, cfg: TeacherConfig, gate: RequestGate | None = None, meter: UsageMeter | None = None) -> None:
        self.cfg = cfg
        self._api_key = read_api_key(cfg.api_key_env)
        # The SDK's default HTTP client on purpose: a hand-built httpx client collapsed under load here.
        self._client = openai.AsyncOpenAI(
            api_key=self._api_key, base_url=cfg.base_url, timeout=cfg.timeout_s, max_retries=0
        )
        self.gate = gate or OpenGate()
        self.meter = meter or UsageMeter()
        self.slots = AdaptiveConcurrency(cfg.concurrency, cfg.min_concurrency, cfg.adaptive_concurrency)
        self._output = _OutputEstimate()

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        started = time.monotonic()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=_RetryAfterOrBackoff(self.cfg),
            retry=retry_if_exception(lambda e: isinstance(e, TeacherError) and e.retryable),
            reraise=True,
        )
        attempts = 0
        async with self.slots.slot() as epoch:
            try:
                async for attempt in retrying:
                    with attempt:
                        attempts += 1
                        reply = await self._gated_attempt(request, epoch)
            except TeacherError as error:
                error.attempts = attempts
                raise
        reply.attempts = attempts
        reply.latency_s = time.monotonic() - started
        return reply

    async def _gated_attempt(self, request: TeacherRequest, epoch: int) -> TeacherReply:
        """One permit from the gate, one HTTP try, and what it taught us about the limits."""
        max_tokens = request.max_tokens or self.cfg.max_tokens
        reserved = self._output.reserve(max_tokens)
        await self.gate.acquire(Cost(1, estimate_tokens(request.messages, self.cfg.limits.chars_per_token),
                                     reserved))
        try:
            reply = await self._attempt(request, max_tokens)
        except TeacherError as error:
            self.meter.attempt(error.kind)
            self.gate.settle_output(reserved)  # nothing was generated
            if error.kind == "rate_limited":
                self.slots.throttled(epoch)
                self.gate.throttled(error.retry_after_s)
            raise
        self.meter.attempt("ok")
        self.slots.succeeded()
        self._output.observe(reply.output_tokens)
        self.gate.settle_output(reserved - reply.output_tokens)
        return reply

    async def _attempt(self, request: TeacherRequest, max_tokens: int) -> TeacherReply:
        """One HTTP try; every failure leaves as a TeacherError with its kind."""
        try:
            # The SDK's documented `post`: its own HTTP, error and response path, minus the per-call
            # TypedDict transform of params that are plain JSON already (a third of its CPU per request).
            body = {"model": self.cfg.model, "messages": request.messages, "max_tokens": max_tokens,
                    "temperature": self.cfg.temperature if request.temperature is None else request.temperature}
            completion = await self._client.post("/chat/completions", body=body, cast_to=ChatCompletion,
                                                 options={"timeout": self.cfg.timeout_s})
        except openai.APIError as error:
            raise self._as_teacher_error(error, request.request_id) from None
        except ValueError as error:  # the body was not JSON at all
            raise self._error("bad_response", f"response body is not valid JSON ({error})", request) from None
        return self._reply_from(completion, request)

    def _reply_from(self, completion: object, request: TeacherRequest) -> TeacherReply:
        try:
            choice = completion.choices[0]
            text = choice.message.content or ""
            finish_reason = choice.finish_reason or "unknown"
            usage = completion.usage
            input_tokens = int(usage.prompt_tokens) if usage else 0
            output_tokens = int(usage.completion_tokens) if usage else 0
            model = completion.model or self.cfg.model
        except (AttributeError, IndexError, TypeError, ValueError) as error:
            shape = f"{type(completion).__name__}: {error}"
            raise self._error("bad_response", f"response is not a chat completion ({shape})", request) from None
        return TeacherReply(
            request_id=request.request_id,
            text=text,
            finish_reason=finish_reason,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            model=model,
            latency_s=0.0,
            cost_usd=cost_usd(input_tokens, output_tokens, self.cfg, model),
        )

    def _as_teacher_error(self, error: openai.APIError, request_id: str) -> TeacherError:
        where = self.cfg.base_url or "api.openai.com"
        if isinstance(error, openai.APITimeoutError):
            kind, message = "timeout", f"no reply from {where} within {self.cfg.timeout_s}s"
        elif isinstance(error, openai.APIConnectionError):
            kind, message = "connection", f"cannot reach {where}: {error}"
        elif isinstance(error, openai.APIStatusError):
            status = error.status_code
            hint = {401: " (check teacher.api_key_env)", 403: " (check teacher.api_key_env)",
                    404: " (check teacher.base_url and teacher.model)"}.get(status, "")
            body = self._scrub(error.response.text)[:_BODY_SNIPPET_CHARS]  # scrub before cutting: no key halves
            return TeacherError(
                _kind_of_status(status),
                f"HTTP {status} from {where} for model {self.cfg.model}{hint}: {body}",
                request_id=request_id,
                status_code=status,
                retry_after_s=retry_after_seconds(error.response.headers),
            )
        else:  # APIResponseValidationError and anything the SDK adds later
            kind, message = "bad_response", f"unusable reply from {where}: {error}"
        return TeacherError(kind, self._scrub(message), request_id=request_id)

    def _error(self, kind: str, message: str, request: TeacherRequest) -> TeacherError:
        return TeacherError(kind, self._scrub(message), request_id=request.request_id)

    def _scrub(self, text: object) -> str:
        return str(text).replace(self._api_key, "***")

    async def aclose(self) -> None:
        await self._client.close()

"""OpenAIBackend against the local OpenAI-compatible server, over real HTTP, one server process per test.

Run: .venv/bin/pytest tests/test_openai_backend.py
"""

from __future__ import annotations

import asyncio
import json
import pickle
import traceback
import urllib.request

import pytest
from pydantic import ValidationError

from configs.teacher_schema import TeacherConfig
from generation.teachers.base import TeacherError, TeacherReply, TeacherRequest, complete_many, prompt_hash
from generation.teachers.openai_backend import OpenAIBackend, retry_after_seconds
from generation.teachers.registry import build_teacher

try:  # `tests` is not a package: pytest puts tests/ itself on sys.path
    from teacher_server import start_server
except ImportError:  # pragma: no cover - when run with the repository root on sys.path
    from tests.teacher_server import start_server

KEY_ENV = "LD_TEST_TEACHER_KEY"
SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"


@pytest.fixture
def serve():
    """serve(**faults) starts a server process; all of them stop when the test ends."""
    started = []

    def start(**faults):
        started.append(start_server(**faults))
        return started[-1]

    yield start
    for handle in started:
        handle.stop()


def teacher_cfg(server, **overrides) -> TeacherConfig:
    settings = dict(
        backend="openai", base_url=server.url, model="tiny-teacher", timeout_s=10, max_retries=3,
        backoff_initial_s=0.01, backoff_max_s=0.05,
    )
    return TeacherConfig(**{**settings, **overrides})


def ask(text: str, **fields) -> TeacherRequest:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    return TeacherRequest(messages=messages, **fields)


def complete(cfg: TeacherConfig, request: TeacherRequest) -> TeacherReply:
    async def go():
        async with build_teacher(cfg) as teacher:
            return await teacher.complete(request)

    return asyncio.run(go())


def failure(cfg: TeacherConfig, request: TeacherRequest) -> TeacherError:
    with pytest.raises(TeacherError) as caught:
        complete(cfg, request)
    return caught.value


def test_normal_reply_carries_text_usage_and_cost(serve):
    server = serve()
    cfg = teacher_cfg(server, price_per_1k_input=2.0, price_per_1k_output=4.0)
    reply = complete(cfg, ask("split the problem into steps", request_id="r-1"))
    assert reply.request_id == "r-1"
    assert reply.text == "split the problem into steps"
    assert reply.finish_reason == "stop" and not reply.truncated
    assert (reply.input_tokens, reply.output_tokens) == (2 + 5, 5)  # the server counts words
    assert reply.cost_usd == pytest.approx((7 * 2.0 + 5 * 4.0) / 1000)
    assert reply.model == "tiny-teacher" and reply.attempts == 1 and reply.latency_s > 0
    assert server.stats()["ok"] == 1
    with urllib.request.urlopen(server.url + "/models") as response:
        assert json.loads(response.read())["data"][0]["id"] == "teacher-server"


def test_429_waits_for_retry_after_then_succeeds(serve):
    server = serve(rate_limit_first=1, retry_after_s=1)
    reply = complete(teacher_cfg(server), ask("hello"))
    assert reply.text == "hello" and reply.attempts == 2
    stats = server.stats()
    assert (stats["rate_limited"], stats["ok"], stats["requests"]) == (1, 1, 2)
    limited, served = server.events()
    # Our own backoff is <= 0.05 s here, so a gap of a full second can only come from Retry-After.
    assert served["arrived"] - limited["answered"] >= 1.0


@pytest.mark.parametrize("status", [500, 503, 408, 409])
def test_transient_status_burst_is_retried_until_success(serve, status):
    server = serve(fail_first=3, fail_status=status)
    reply = complete(teacher_cfg(server, max_retries=3), ask("again"))
    assert reply.text == "again" and reply.attempts == 4
    stats = server.stats()
    assert (stats["server_error"], stats["ok"]) == (3, 1)


def test_hanging_request_times_out_then_retry_succeeds(serve):
    server = serve(hang_first=1)
    reply = complete(teacher_cfg(server, timeout_s=1.0), ask("still there?"))
    assert reply.text == "still there?" and reply.attempts == 2
    stats = server.stats()
    assert (stats["requests"], stats["ok"], stats["in_flight"]) == (2, 1, 1)  # the first one still hangs


def test_retries_exhausted_raise_teacher_error_with_kind(serve):
    server = serve(fail_fraction=1.0, fail_status=502)
    error = failure(teacher_cfg(server, max_retries=2), ask("doomed", request_id="r-9"))
    assert (error.kind, error.status_code, error.attempts, error.request_id) == ("server_error", 502, 3, "r-9")
    assert error.retryable and "HTTP 502" in str(error)
    assert server.stats()["server_error"] == 3


def test_timeouts_exhausted_raise_timeout(serve):
    server = serve(hang_fraction=1.0)
    error = failure(teacher_cfg(server, timeout_s=0.5, max_retries=1), ask("nobody home"))
    assert (error.kind, error.attempts) == ("timeout", 2)
    assert server.stats()["requests"] == 2


def test_malformed_json_is_bad_response_and_not_retried(serve):
    server = serve(malformed_first=1)
    error = failure(teacher_cfg(server), ask("garbled"))
    assert (error.kind, error.attempts) == ("bad_response", 1)
    assert server.stats()["malformed"] == 1 and server.stats()["requests"] == 1


def test_length_finish_reason_is_surfaced(serve):
    server = serve()
    reply = complete(teacher_cfg(server), ask("one two three four five six", max_tokens=3))
    assert reply.finish_reason == "length" and reply.truncated
    assert reply.text == "one two three" and reply.output_tokens == 3
    assert server.stats()["truncated"] == 1


def test_connection_refused_is_retried_then_reported(serve):
    server = serve()
    cfg = teacher_cfg(server, max_retries=1)
    server.stop()
    error = failure(cfg, ask("anyone?"))
    assert (error.kind, error.attempts) == ("connection", 2)


def test_wrong_path_fails_at_once_as_not_found(serve):
    server = serve()
    error = failure(teacher_cfg(server, base_url=server.root + "/nope"), ask("where"))
    assert (error.kind, error.status_code, error.attempts) == ("not_found", 404, 1)
    assert "teacher.base_url" in str(error)


def test_rejected_key_fails_at_once_and_never_leaks(serve, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    server = serve(require_api_key="the-right-key")  # its 401 body echoes the key it got, as OpenAI's does
    error = failure(teacher_cfg(server, api_key_env=KEY_ENV), ask("let me in"))
    assert (error.kind, error.status_code, error.attempts) == ("auth", 401, 1)
    assert server.stats()["unauthorized"] == 1
    everything_said = "".join(traceback.format_exception(error)) + repr(error) + repr(error.args)
    assert "Incorrect API key provided" in everything_said and SECRET not in everything_said


def test_accepted_key_is_sent_as_bearer(serve, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    server = serve(require_api_key=SECRET)
    assert complete(teacher_cfg(server, api_key_env=KEY_ENV), ask("ok")).text == "ok"


@pytest.mark.parametrize("value", [None, "  "])
def test_missing_key_variable_is_named(serve, monkeypatch, value):
    if value is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(TeacherError, match=KEY_ENV) as caught:
        OpenAIBackend(teacher_cfg(serve(), api_key_env=KEY_ENV))
    assert caught.value.kind == "auth"


def test_complete_many_keeps_order_and_bounds_in_flight(serve, tmp_path):
    requests = [ask(f"question number {i}", request_id=f"q{i}") for i in range(40)]
    unscripted = requests[17]
    script = tmp_path / "script.jsonl"
    script.write_text("".join(
        json.dumps({"prompt_hash": prompt_hash(r.messages), "reply": f"answer {r.request_id}"}) + "\n"
        for r in requests if r is not unscripted
    ))
    server = serve(latency_s=0.02, latency_jitter_s=0.08, fail_fraction=0.2, script_path=str(script), seed=1)

    async def go():
        async with OpenAIBackend(teacher_cfg(server, concurrency=64, max_retries=10)) as teacher:
            return await complete_many(teacher, requests, concurrency=8)

    results = asyncio.run(go())
    assert isinstance(results[17], TeacherError) and results[17].kind == "bad_request"
    assert results[17].request_id == "q17"
    answered = [r for i, r in enumerate(results) if i != 17]
    assert [r.text for r in answered] == [f"answer q{i}" for i in range(40) if i != 17]
    assert [r.request_id for r in answered] == [f"q{i}" for i in range(40) if i != 17]
    stats = server.stats()
    assert stats["ok"] == 39 and stats["unscripted"] == 1
    assert 1 <= stats["max_in_flight"] <= 8


def test_backend_concurrency_caps_in_flight_below_caller(serve):
    server = serve(latency_s=0.05)

    async def go():
        async with OpenAIBackend(teacher_cfg(server, concurrency=3)) as teacher:
            return await complete_many(teacher, [ask(f"q{i}") for i in range(12)], concurrency=8)

    assert [r.text for r in asyncio.run(go())] == [f"q{i}" for i in range(12)]
    assert server.stats()["max_in_flight"] <= 3


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a past date
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_teacher_error_survives_pickling():
    error = TeacherError("rate_limited", "slow down", request_id="r", status_code=429, retry_after_s=3.0, attempts=4)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.message, copy.status_code, copy.retry_after_s, copy.attempts) == (
        "rate_limited", "slow down", 429, 3.0, 4)
    assert str(copy) == str(error)


def test_config_rejects_bad_values_without_echoing_them():
    with pytest.raises(ValidationError, match="NAME of an environment variable") as caught:
        TeacherConfig(backend="openai", base_url="http://x", api_key_env=SECRET)
    assert SECRET not in str(caught.value)
    with pytest.raises(ValidationError, match="backoff_max_s"):
        TeacherConfig(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValidationError, match="needs teacher.api_key_env"):
        TeacherConfig(backend="openai")
    with pytest.raises(ValidationError, match="max_tokens"):
        TeacherConfig(max_tokens=0)
    with pytest.raises(ValidationError, match="extra"):
        TeacherConfig(temprature=0.5)


def test_request_validation_names_the_problem():
    with pytest.raises(ValueError, match="role 'robot'"):
        TeacherRequest(messages=[{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="messages is empty"):
        TeacherRequest(messages=[])

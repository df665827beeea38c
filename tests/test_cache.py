"""The response cache: content addressing, many processes on one file, the cached teacher, export to replay.

Run: .venv/bin/pytest tests/test_cache.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3

import pytest

from configs.teacher_schema import ModelPrice, TeacherConfig
from generation.storage.cache import ResponseCache, cache_key
from generation.teachers.accounting import UsageMeter
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, complete_many
from generation.teachers.replay_backend import ReplayTeacher
from generation.teachers.stack import CachedTeacher

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "which function?"}]


def entry(text: str, model: str = "m", cost: float = 0.5) -> dict:
    return {"prompt_hash": "h", "model": model, "text": text, "finish_reason": "stop", "input_tokens": 10,
            "output_tokens": 2, "cost_usd": cost}


def test_key_changes_with_every_part_of_the_request():
    base = dict(model="m", messages=MESSAGES, sampling={"temperature": 0.0, "max_tokens": 64},
                template_version="ld-v1", parser_version="calls-v1", sample_index=None)
    key = cache_key(**base)
    assert key == cache_key(**dict(base))
    variants = [{"model": "m2"}, {"messages": MESSAGES[:1] + [{"role": "user", "content": "which function ?"}]},
                {"sampling": {"temperature": 0.7, "max_tokens": 64}},
                {"sampling": {"temperature": 0.0, "max_tokens": 65}},
                {"template_version": "ld-v2"}, {"parser_version": "calls-v2"}, {"sample_index": 1}]
    keys = {cache_key(**{**base, **change}) for change in variants}
    assert key not in keys and len(keys) == len(variants)


def test_first_answer_wins_and_billing_counts_each_answer_once(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("k1", entry("first"))
    cache.put("k1", entry("second"))
    cache.put("k2", entry("other", model="big", cost=2.0))
    assert cache.get("k1")["text"] == "first" and cache.get("missing") is None
    assert cache.get_many(["k1", "k2", "nope"]).keys() == {"k1", "k2"}
    assert cache.billing() == {"big": {"requests": 1, "input_tokens": 10, "output_tokens": 2, "cost_usd": 2.0},
                               "m": {"requests": 1, "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5}}
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _writer(path: str, worker: int, n: int) -> None:
    cache = ResponseCache(path)
    for i in range(n):
        cache.put(f"w{worker}-{i}", entry(f"{worker}:{i}"))
        cache.put(f"shared-{i}", entry(f"shared by {worker}"))
        assert cache.get(f"w{worker}-{i}")["text"] == f"{worker}:{i}"
    cache.close()


def test_many_processes_share_one_file_without_losing_a_write(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ResponseCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w, 150)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    cache = ResponseCache(path)
    assert len(cache) == 3 * 150 + 150  # every private key, and each shared key exactly once


class CountingTeacher(TeacherBackend):
    """A real backend that answers by rule and counts what it was asked."""

    def __init__(self, fail_on: str | None = None, delay_s: float = 0.0):
        self.calls: list[str] = []
        self.fail_on = fail_on
        self.delay_s = delay_s

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        text = request.messages[-1]["content"]
        self.calls.append(text)
        await asyncio.sleep(self.delay_s)
        if text == self.fail_on:
            raise TeacherError("server_error", "boom", request_id=request.request_id)
        return TeacherReply(request_id=request.request_id, text=f"answer to {text}", finish_reason="stop",
                            input_tokens=3, output_tokens=2, model="served-model-2024", latency_s=0.0, cost_usd=0.25)


def ask(text: str, rid: str = "r", **meta) -> TeacherRequest:
    return TeacherRequest(messages=[{"role": "user", "content": text}], request_id=rid, metadata=meta)


def test_cached_teacher_pays_once_and_shares_in_flight_requests(tmp_path):
    cfg = TeacherConfig(model="served-model", prices={"served-model": ModelPrice(input_per_1k=1, output_per_1k=1)})
    inner, meter = CountingTeacher(fail_on="bad", delay_s=0.01), UsageMeter()
    teacher = CachedTeacher(inner, cfg, meter, ResponseCache(tmp_path / "c.sqlite"))

    async def go():
        first = await complete_many(teacher, [ask("a", "r1"), ask("a", "r2"), ask("b", "r3"), ask("bad", "r4")], 8)
        again = await complete_many(teacher, [ask("a", "r5"), ask("bad", "r6"), ask("a", "r7", template="v2")], 8)
        return first, again

    first, again = asyncio.run(go())
    assert inner.calls.count("a") == 2  # "a" once, then once more under another template version
    assert inner.calls.count("bad") == 2  # failures are not cached
    assert [r.request_id for r in first[:3]] == ["r1", "r2", "r3"]
    assert [r.cached for r in first[:3]] == [False, True, False]
    assert again[0].cached and again[0].text == "answer to a" and again[0].request_id == "r5"
    assert isinstance(first[3], TeacherError) and isinstance(again[1], TeacherError)
    totals = meter.snapshot()
    assert (totals["requests"], totals["cache_hits"], totals["failures"], totals["api_calls"]) == (7, 2, 2, 5)
    assert totals["cost_usd"] == pytest.approx(3 * 0.25)  # billed replies only
    assert totals["by_model"]["served-model-2024"]["requests"] == 3
    assert totals["errors"] == {"server_error": 2}


def test_cache_export_replays_the_same_answers(tmp_path):
    cfg = TeacherConfig(model="served-model")
    cache = ResponseCache(tmp_path / "c.sqlite")
    teacher = CachedTeacher(CountingTeacher(), cfg, UsageMeter(), cache)
    requests = [ask(f"q{i}", f"r{i}") for i in range(5)]
    originals = asyncio.run(complete_many(teacher, requests, 4))
    assert cache.export_jsonl(tmp_path / "replay.jsonl") == 5

    replay = ReplayTeacher(TeacherConfig(backend="replay", replay_path=str(tmp_path / "replay.jsonl")))
    replayed = asyncio.run(complete_many(replay, requests + [ask("never asked", "r9")], 4))
    assert [r.text for r in replayed[:5]] == [r.text for r in originals]
    assert [r.output_tokens for r in replayed[:5]] == [2] * 5 and replayed[0].cost_usd == 0.0
    missing = replayed[5]
    assert isinstance(missing, TeacherError) and missing.kind == "not_found"
    assert ask("never asked").prompt_hash in missing.message


def test_replay_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_hash": "x", "reply": "ok"}\n{"reply": "no key"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: each line needs"):
        ReplayTeacher(TeacherConfig(backend="replay", replay_path=str(bad)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ReplayTeacher(TeacherConfig(backend="replay", replay_path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(ValueError, match="needs teacher.replay_path"):
        TeacherConfig(backend="replay")

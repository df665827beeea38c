"""The local Hugging Face teacher backend on a tiny checkpoint built here, and backend selection errors.

(The replay backend is tested with the cache it is exported from, in tests/test_cache.py.)
Run: .venv/bin/pytest tests/test_generation_backends.py
"""

from __future__ import annotations

import asyncio

import pytest

from configs.teacher_schema import TeacherConfig
from configs.training_schema import StudentConfig
from generation.teachers.base import TeacherRequest, complete_many
from generation.teachers.hf_backend import HFTeacher, pick_engine
from generation.teachers.registry import build_teacher
from generation.teachers.stack import build_teacher_stack

CORPUS = ["Call: chase(target=\"e1\")", "Reason: the nearest evader.", "Which function for this stage?"] * 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from training.student_builder import build_student

    return build_student(StudentConfig(preset="tiny", vocab_size=320, max_seq_len=128), CORPUS,
                         tmp_path_factory.mktemp("tiny"), seed=0)


def ask(i: int, max_tokens: int | None = None) -> TeacherRequest:
    return TeacherRequest(messages=[{"role": "user", "content": f"Which function for stage {i}?"}],
                          request_id=f"r{i}", max_tokens=max_tokens)


def test_concurrent_requests_are_batched_and_each_gets_its_reply(checkpoint):
    cfg = TeacherConfig(backend="hf", model=str(checkpoint), max_tokens=6, hf_batch_size=4, temperature=0.0)
    teacher = build_teacher(cfg)
    assert isinstance(teacher, HFTeacher) and teacher.engine_name == "transformers"
    requests = [ask(i) for i in range(6)] + [ask(6, max_tokens=3)]
    replies = asyncio.run(complete_many(teacher, requests, concurrency=16))
    assert [r.request_id for r in replies] == [f"r{i}" for i in range(7)]
    assert teacher.batches == 3  # 6 requests of one shape in batches of 4, then the other max_tokens alone
    for reply in replies:
        assert reply.input_tokens > 3 and 1 <= reply.output_tokens <= 6 and reply.model == str(checkpoint)
        assert reply.finish_reason in ("stop", "length")
    # an untrained model rarely emits EOS: the capped ones stopped at their limit and say so
    capped = [r for r in replies if r.output_tokens == 6] + [r for r in replies[6:] if r.output_tokens == 3]
    assert capped and all(r.finish_reason == "length" for r in capped)
    again = asyncio.run(complete_many(teacher, [ask(0)], concurrency=1))[0]
    assert again.text == replies[0].text  # greedy: the same prompt gives the same reply


def test_hf_backend_goes_through_the_stack_with_its_accounting(checkpoint):
    stack = build_teacher_stack(TeacherConfig(backend="hf", model=str(checkpoint), max_tokens=4))
    replies = asyncio.run(complete_many(stack, [ask(i) for i in range(3)], concurrency=3))
    totals = stack.meter.snapshot()
    assert totals["requests"] == totals["api_calls"] == 3
    assert totals["output_tokens"] == sum(r.output_tokens for r in replies)


def test_bad_backend_settings_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher.model must be a local checkpoint directory"):
        build_teacher(TeacherConfig(backend="hf", model=str(tmp_path / "nowhere")))
    assert pick_engine(TeacherConfig(backend="hf", model="x", hf_engine="transformers")) == "transformers"
    with pytest.raises(ValueError, match="min_concurrency"):
        TeacherConfig(concurrency=2, min_concurrency=4)

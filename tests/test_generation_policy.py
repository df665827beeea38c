"""The teacher policy's reply validation and re-asks, rejection records, and accounting (no Ray, no HTTP).

Run: .venv/bin/pytest tests/test_generation_policy.py
"""

from __future__ import annotations

import pytest

from configs.teacher_schema import ModelPrice, TeacherConfig
from generation.ld.policies.base import SelectionRequest
from generation.ld.policies.teacher_policy import TeacherSelectionPolicy
from generation.ld.prompts import Candidate
from generation.teachers.accounting import UsageMeter, add_snapshots, usage_delta
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, cost_usd, prompt_hash
from generation.teachers.service import TeacherService
from generation.teachers.stack import CachedTeacher

GOOD = 'Reason: closest.\nCall: chase(target="e1")'


class ScriptedTeacher(TeacherBackend):
    """Answers each ask of a stage with the next item of its script: text, ("length", text) or a TeacherError."""

    def __init__(self, script: dict[str, list]):
        self.script = {k: list(v) for k, v in script.items()}
        self.asked: list[list[dict[str, str]]] = []

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        self.asked.append(request.messages)
        item = self.script[request.metadata["stage"]].pop(0)
        if isinstance(item, TeacherError):
            raise item
        finish, text = item if isinstance(item, tuple) else ("stop", item)
        return TeacherReply(request_id=request.request_id, text=text, finish_reason=finish, input_tokens=5,
                            output_tokens=len(text.split()), model="m", latency_s=0.0)


def selection(stage: str) -> SelectionRequest:
    return SelectionRequest(rules="rules", instruction="catch e1", state_text="state", stage=stage,
                            stage_input="none", candidates=[Candidate("chase", ["target"], "chase a target")])


def policy_for(script: dict[str, list], max_reasks: int = 2) -> tuple[TeacherSelectionPolicy, ScriptedTeacher]:
    inner = ScriptedTeacher(script)
    backend = CachedTeacher(inner, TeacherConfig(), UsageMeter())
    service = TeacherService(TeacherConfig(max_tokens=64, concurrency=4), backend=backend, max_reasks=max_reasks)
    policy = TeacherSelectionPolicy(service, tag="train3")
    return policy, inner


def test_bad_replies_are_reasked_with_the_reason_and_keep_their_request_id():
    error = TeacherError("bad_response", "response body is not valid JSON")
    policy, teacher = policy_for({"a": ["no call here", GOOD], "b": [("length", "Reason: because"), GOOD],
                                  "c": [error, GOOD], "d": [GOOD]})
    replies = policy.select([selection(s) for s in "abcd"])
    assert [r.text for r in replies] == [GOOD] * 4
    assert [r.request_id for r in replies] == ["train3-0", "train3-1", "train3-2", "train3-3"]
    assert [r.meta["asks"] for r in replies] == [2, 2, 2, 1]
    reasks = teacher.asked[4:]
    parse_turn, length_turn, same_again = reasks
    assert parse_turn[-2] == {"role": "assistant", "content": "no call here"}
    assert "could not be used (no line starting with 'Call:')" in parse_turn[-1]["content"]
    assert "cut off at the limit of 64 tokens" in length_turn[-1]["content"]
    assert same_again == teacher.asked[2]  # a garbled body showed nothing: the same request again
    assert policy.rejections == []
    assert policy.usage["reasks"] == 3 and policy.usage["asked"] == 7


def test_a_reply_still_bad_after_the_last_reask_is_a_rejection_with_its_reason():
    policy, teacher = policy_for({"a": ["nope", "still nope", 'Call: flee(to="x")'],
                                  "b": [TeacherError("server_error", "HTTP 502 after 6 tries")]}, max_reasks=2)
    replies = policy.select([selection("a"), selection("b")])
    assert [r.text for r in replies] == ["", ""] and all(r.meta["rejected"] for r in replies)
    failed, parse = policy.rejections  # in the order they were decided: the failure at once, the parse at the end
    first_prompt = teacher.asked[0]
    assert (parse.reason_kind, parse.asks, parse.request_id) == ("parse", 3, "train3-0")
    assert "'flee' is not among the candidates" in parse.reason and parse.last_reply == 'Call: flee(to="x")'
    assert parse.prompt_hash == prompt_hash(first_prompt) and parse.stage == "a"
    assert (failed.reason_kind, failed.asks) == ("teacher_error:server_error", 1)  # retried already: no re-ask
    assert policy.usage["rejections"] == 2 and policy.usage["rejected"] == {"parse": 1, "teacher_error:server_error": 1}


def test_begin_resets_ids_and_rejections_per_task():
    policy, _ = policy_for({"a": ["bad", GOOD, GOOD]}, max_reasks=0)
    policy.select([selection("a")])
    assert len(policy.rejections) == 1
    policy.begin("train9")
    assert policy.rejections == []
    assert policy.select([selection("a")])[0].request_id == "train9-0"
    assert policy.usage["asked"] == 1 and policy.usage["rejections"] == 0


def test_random_sampling_numbers_repeated_prompts_so_each_is_its_own_sample():
    teacher = ScriptedTeacher({"a": [GOOD] * 3})
    policy = TeacherSelectionPolicy(TeacherService(TeacherConfig(temperature=0.7), backend=teacher), tag="t")
    samples = [policy._request(selection("a")).metadata.get("sample") for _ in range(3)]
    assert samples == [0, 1, 2]
    greedy = TeacherSelectionPolicy(TeacherService(TeacherConfig(), backend=teacher), tag="t")
    assert "sample" not in greedy._request(selection("a")).metadata


def test_price_table_matches_served_names_by_longest_prefix():
    cfg = TeacherConfig(model="gpt-4o-mini", price_per_1k_input=9, price_per_1k_output=9,
                        prices={"gpt-4o": ModelPrice(input_per_1k=2.5, output_per_1k=10),
                                "gpt-4o-mini": ModelPrice(input_per_1k=0.15, output_per_1k=0.6)})
    assert cost_usd(1000, 1000, cfg, "gpt-4o-mini-2024-07-18") == pytest.approx(0.75)
    assert cost_usd(1000, 1000, cfg, "gpt-4o-2024-08-06") == pytest.approx(12.5)
    assert cost_usd(1000, 0, cfg, "some-proxy-name") == pytest.approx(0.15)  # the configured model's price
    assert cost_usd(1000, 0, TeacherConfig(price_per_1k_input=3), "x") == pytest.approx(3.0)


def test_snapshots_add_up_and_deltas_isolate_one_task():
    a, b = UsageMeter(), UsageMeter()
    a.attempt("rate_limited")
    a.attempt("ok")
    a.reply("m", 10, 2, 0.1, cached=False)
    before = a.snapshot()
    a.reply("m", 10, 2, 0.1, cached=True)
    a.rejection("parse")
    b.reply("n", 1, 1, 1.0, cached=False)
    total = add_snapshots([a.snapshot(), b.snapshot()])
    assert (total["requests"], total["cache_hits"], total["cost_usd"]) == (3, 1, pytest.approx(1.1))
    assert total["errors"] == {"rate_limited": 1} and set(total["by_model"]) == {"m", "n"}
    delta = usage_delta(a.snapshot(), before)
    assert (delta["requests"], delta["cache_hits"], delta["cost_usd"], delta["rejections"]) == (1, 1, 0, 1)
    assert delta["by_model"] == {} and delta["rejected"] == {"parse": 1}

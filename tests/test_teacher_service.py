"""The one teacher service: any method's parse and re-ask (no Ray, no HTTP), and the LD function-base request
asked through the run's limiter, cache and meter over real HTTP (cached, counted in the cost table).

Run: .venv/bin/pytest tests/test_teacher_service.py
"""

from __future__ import annotations

import json

import pytest

from configs.teacher_schema import TeacherConfig
from generation.ld.envs.registry import make_env
from generation.ld.prompts import function_base_messages
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, prompt_hash
from generation.teachers.service import Ask, TeacherService
from teacher_server import running_server


class Script(TeacherBackend):
    """Answers request after request with the next item: text, ("length", text) or a TeacherError."""

    def __init__(self, items: list):
        self.items, self.asked = list(items), []

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        self.asked.append(request)
        item = self.items.pop(0)
        if isinstance(item, TeacherError):
            raise item
        finish, text = item if isinstance(item, tuple) else ("stop", item)
        return TeacherReply(request_id=request.request_id, text=text, finish_reason=finish, input_tokens=3,
                            output_tokens=2, model="m", latency_s=0.0)


def numbers(text: str) -> list[int]:
    values = json.loads(text)
    if not isinstance(values, list):
        raise ValueError("expected a JSON list")
    return values


def ask(text: str) -> Ask:
    return Ask(TeacherRequest([{"role": "user", "content": text}], request_id=text), parse=numbers, stage="count")


def test_a_method_states_its_parse_and_the_service_reasks_then_rejects():
    script = Script(["[1, 2]", "not json", ("length", "[3,"), "{}", "[3]", TeacherError("auth", "HTTP 401")])
    with TeacherService(TeacherConfig(max_tokens=9), backend=script, max_reasks=1) as service:
        first = service.ask([ask("a"), ask("b"), ask("c")])
        assert [a.value for a in first] == [[1, 2], None, [3]]
        assert [a.asks for a in first] == [1, 2, 2]
        [rejected] = service.rejections
        assert (rejected.request_id, rejected.reason_kind, rejected.asks, rejected.stage) == ("b", "parse", 2, "count")
        assert rejected.prompt_hash == prompt_hash([{"role": "user", "content": "b"}])  # the first ask, not the re-ask
        followups = [r.messages[-1]["content"] for r in script.asked[3:5]]
        assert any("could not be used" in f for f in followups) and any("cut off" in f for f in followups)
        [auth] = service.ask([ask("d")])
        assert auth.rejection.reason_kind == "teacher_error:auth" and auth.asks == 1  # never re-asked
        assert service.usage["reasks"] == 2 and service.usage["rejections"] == 2


@pytest.mark.slow
def test_the_function_base_request_is_cached_and_counted_in_the_cost_table(tmp_path, monkeypatch):
    from generation_fixtures import http_config
    from launch.cli import main
    from ray_jobs.generate import FUNCTION_BASE_USAGE, summarize_generation

    monkeypatch.setenv("WANDB_MODE", "disabled")
    run_dir = tmp_path / "run"
    env = make_env(http_config("http://x").task)
    base_hash = prompt_hash(function_base_messages(env.name, env.rules_text(), env.stages))
    overrides = ["teacher.backend=openai", "teacher.model=m", "teacher.backoff_initial_s=0.05",
                 "teacher.backoff_max_s=0.2", "teacher.price_per_1k_input=1", "generation.train_episodes=2",
                 "generation.episodes_per_unit=2", "generation.num_actors=1", "generation.progress=false",
                 "ray.num_cpus=2", "wandb.mode=disabled"]
    with running_server(reply_fn="expert_reply:pursuit_expert") as server:
        args = ["generate", *overrides, f"teacher.base_url={server.url}", "--run-dir", str(run_dir)]
        assert main(args) == 0
        answered = server.answered_per_prompt()
        assert answered.get(base_hash) == 1
        usage = json.loads((run_dir / "data" / FUNCTION_BASE_USAGE).read_text())
        assert usage["requests"] == 1 and usage["input_tokens"] > 0 and usage["cost_usd"] > 0
        summary = summarize_generation(run_dir / "data")
        assert summary["teacher_requests"] == sum(answered.values())  # every billed answer, the base's included
        assert summary["teacher_cost_usd"] > usage["cost_usd"]

        # the base asked again (its file lost): answered from the run's cache, not billed twice
        saved = json.loads((run_dir / "function_base.json").read_text())
        (run_dir / "function_base.json").unlink()
        (run_dir / "data" / "functions.parquet").unlink()
        assert main(args) == 0
        assert server.answered_per_prompt() == answered
        assert json.loads((run_dir / "function_base.json").read_text()) == saved
        again = json.loads((run_dir / "data" / FUNCTION_BASE_USAGE).read_text())
        assert again["cache_hits"] == 1 and again["cost_usd"] == 0

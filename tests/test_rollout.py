"""Episodes played function by function, in-process (no Ray): teacher, majority, broken policies."""

import pytest

from configs.schema import RunConfig
from generation.ld.envs.registry import make_env
from generation.ld.functions.function_base import FunctionBase, build_function_base
from generation.ld.envs.pursuit import resources
from generation.ld.policies.base import PolicyReply
from generation.ld.policies.majority import MajorityPolicy
from generation.ld.rollout import play_by_actions, play_by_functions, start_episodes
from generation.sandbox.runner import Sandbox
from generation.ld.workers import TeacherDemoWorker
from generation.ld.functions.function_base import sample_states


@pytest.fixture(scope="module")
def cfg():
    return RunConfig()


@pytest.fixture(scope="module")
def base_path(cfg, tmp_path_factory):
    env = make_env(cfg.task)
    base, _ = build_function_base(resources.function_base_reply(), env.stages, sample_states(env, [0, 1]),
                                  cfg.sandbox, env.check_stage_output, "r")
    path = tmp_path_factory.mktemp("base") / "function_base.json"
    base.save(path)
    return path


class Garbage:
    """A policy whose every reply is unusable, in a different way each time."""

    kind = "select"
    replies = ["", "I think we should chase.", "Call: rm_rf()", "Call: target_evader(", "Call: move_direct(x=1)"]

    def __init__(self):
        self.n = 0

    def select(self, requests):
        out = []
        for _ in requests:
            out.append(PolicyReply(self.replies[self.n % len(self.replies)]))
            self.n += 1
        return out

    def act(self, requests):
        return [PolicyReply("Action: {not json") for _ in requests]


def test_expert_teacher_demonstrations(cfg, base_path):
    worker = TeacherDemoWorker(cfg, base_path)
    try:
        result = worker.run(list(range(6)), "t")
    finally:
        worker.close()
    assert len(result["episodes"]) == 6
    assert sum(e["success"] for e in result["episodes"]) >= 5
    decisions = sum(e["decisions"] for e in result["episodes"])
    assert all(e["invalid"] == 0 for e in result["episodes"])
    assert result["usage"]["requests"] == 2 * decisions  # one teacher request per stage per step
    stages = {r.stage for r in result["stage_records"]}
    assert stages == {"target", "move"}
    rec = result["stage_records"][0]
    assert rec.completion.startswith("Call: ") and rec.function in rec.candidates
    assert result["action_records"][0].completion.startswith("Action: ")


def test_garbage_policy_is_invalid_not_a_crash(cfg, base_path):
    base = FunctionBase.load(base_path)
    episodes = start_episodes(lambda: make_env(cfg.task), [1_000_000, 1_000_001], "g")
    with Sandbox(cfg.sandbox) as box:
        box.load(base.sources())
        play_by_functions(episodes, Garbage(), base, box, top_k=3)
    for e in episodes:
        assert e.done and e.result["decisions"] > 0
        assert e.result["invalid"] == e.result["decisions"]
        assert e.failures


def test_garbage_action_policy(cfg):
    episodes = start_episodes(lambda: make_env(cfg.task), [1_000_002], "g")
    play_by_actions(episodes, Garbage())
    assert episodes[0].result["invalid"] == episodes[0].result["decisions"] > 0


def test_kd_prompt_asks_the_question_of_its_env(cfg):
    """The KD prompt's last line is the env's `action_question`: pursuit's prompt is unchanged, other envs
    get the generic default."""
    from generation.ld.envs.base import DecisionEnv
    from generation.ld.envs.twentyone.env import TwentyOneEnv
    from generation.ld.kd_prompts import student_action_prompt

    asked = []

    class Recorder:
        def act(self, requests):
            asked.extend(requests)
            return [PolicyReply("Action: null") for _ in requests]

    play_by_actions(start_episodes(lambda: make_env(cfg.task), [1_000_003], "q"), Recorder())
    assert asked and {r.question for r in asked} == {"Decide the joint action."}
    assert student_action_prompt("Go.", "s", asked[0].question) == "Instruction: Go.\nState:\ns\nDecide the joint action."
    assert TwentyOneEnv.action_question == DecisionEnv.action_question == "Decide the action."


def test_majority_policy_uses_most_common_sequence(cfg, base_path):
    worker = TeacherDemoWorker(cfg, base_path)
    try:
        records = worker.run([0, 1, 2], "m")["stage_records"]
    finally:
        worker.close()
    majority = MajorityPolicy.from_records(records)
    assert set(majority.completion_per_stage) == {"target", "move"}
    assert all(c.startswith("Call: ") for c in majority.completion_per_stage.values())

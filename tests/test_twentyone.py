"""21 Points: cards, dealer, instructions, text format, function base, expert, and the pipeline's view."""

from __future__ import annotations

import json
import random

import pytest

from configs.schema import RunConfig
from configs.task_schema import TwentyOneConfig
from generation.ld.envs.base import aggregate, aggregate_by, heldout_seeds
from generation.ld.envs.pursuit.offline_eval import play_with_functions
from generation.ld.envs.registry import expert_for, make_env
from generation.ld.envs.twentyone import instructions as ins
from generation.ld.envs.twentyone.cards import dealer_plays, hand_total
from generation.ld.envs.twentyone.env import TwentyOneEnv
from generation.ld.envs.twentyone.expert import FUNCTION_STAGES, expert_select
from generation.ld.envs.twentyone.resources import teacher_functions_source
from generation.ld.envs.twentyone.text import parse_state_text, render_state


class FixedShoe:
    def __init__(self, cards):
        self.cards = list(cards)

    def draw(self):
        return self.cards.pop(0)


def dealt(player, dealer, then=(), instruction=None, config=None) -> TwentyOneEnv:
    """An env whose hand is set by the test: player/dealer cards, then the shoe's next cards."""
    env = TwentyOneEnv(config)
    env.reset(0, instruction or ins.win())
    env._player, env._dealer, env._shoe = list(player), list(dealer), FixedShoe(then)
    return env


@pytest.fixture(scope="module")
def functions():
    namespace: dict = {}
    exec(compile(teacher_functions_source(), "teacher_functions.py.txt", "exec"), namespace)  # tests only
    return {n: namespace[n] for n in FUNCTION_STAGES}


def test_hand_totals_count_one_ace_as_eleven_when_it_fits():
    assert hand_total(["A", "6"]) == (17, True)
    assert hand_total(["A", "6", "9"]) == (16, False)
    assert hand_total(["A", "A", "9"]) == (21, True)
    assert hand_total(["K", "Q", "2"]) == (22, False)


def test_dealer_draws_to_seventeen_and_the_soft_17_rule():
    assert dealer_plays(["10", "6"], FixedShoe(["A"]), hits_soft_17=False) == ["10", "6", "A"]
    assert dealer_plays(["A", "6"], FixedShoe(["3"]), hits_soft_17=False) == ["A", "6"]
    assert dealer_plays(["A", "6"], FixedShoe(["3"]), hits_soft_17=True) == ["A", "6", "3"]


def test_stand_lets_the_dealer_play_and_settles_the_hand():
    env = dealt(["10", "8"], ["9", "7"], then=["5"])  # dealer 16 draws 5: 21 beats 18
    result = env.step("stand")
    assert result.done and not result.success
    m = env.episode_metrics()
    assert (m["reason"], m["dealer_total"], m["scores"]["mean_reward"]) == ("loss", 21, -1.0)
    env = dealt(["10", "8"], ["9", "7"], then=["K"])  # dealer busts
    assert env.step("stand").success and env.episode_metrics()["scores"]["win_rate"] == 1.0


def test_bust_loses_at_once_and_double_doubles_the_stake():
    env = dealt(["10", "8"], ["9", "7"], then=["5"])
    assert env.step("hit").done
    assert env.episode_metrics()["scores"] == {"win_rate": 0.0, "bust_rate": 1.0, "mean_reward": -1.0}
    env = dealt(["6", "5"], ["9", "8"], then=["10"])  # 21 after the double; dealer stands on 17
    assert env.legal_decisions() == ["hit", "stand", "double"]
    assert env.step("double").done
    m = env.episode_metrics()
    assert (m["cards"], m["reason"], m["scores"]["mean_reward"]) == (3, "win", 2.0)


def test_double_only_as_first_decision_and_illegal_decisions_stand():
    env = dealt(["2", "3"], ["9", "8"], then=["2", "2"])
    env.step("hit")
    assert "double" not in env.legal_decisions() and not env.state()["can_double"]
    result = env.step("double")  # illegal now: counted, and becomes stand
    assert result.invalid and result.done and env.episode_metrics()["invalid"] == 1
    no_double = dealt(["2", "3"], ["9", "8"], config=TwentyOneConfig(allow_double=False))
    assert not no_double.is_legal("double")


@pytest.mark.parametrize("instruction, player, then, success", [
    (ins.reach(18), ["10", "5"], ["3"], True),   # hit to 18, whatever the dealer does
    (ins.reach(18), ["10", "5"], ["8"], False),  # bust
    (ins.cards(3), ["10", "5"], ["2"], True),
    (ins.cards(4), ["10", "5"], ["2"], False),   # stood with three cards
])
def test_success_follows_the_instruction(instruction, player, then, success):
    env = dealt(player, ["10", "10"], then=list(then), instruction=instruction)
    if env.step("hit").done:
        assert env.episode_metrics()["success"] is success
        return
    assert env.step("stand").success is success


def test_instructions_round_trip_and_reject_other_text():
    for instruction in (ins.win(), ins.reach(19), ins.cards(4)):
        assert ins.parse_instruction(instruction.text) == instruction
    with pytest.raises(ValueError, match="not a 21 Points instruction"):
        ins.parse_instruction("Capture all evaders.")
    kinds = {TwentyOneEnv().sample_instruction(s).kind for s in range(60)}
    assert kinds == {"win", "reach", "cards"}


def test_state_text_shows_totals_and_checks_them():
    state = {"player": ["A", "6"], "total": 17, "soft": True, "dealer_up": "9", "decisions": 0, "can_double": True}
    text = render_state(state)
    assert text == "hand A 6 (soft 17)\ndealer 9\ndecision 1, double allowed"
    assert parse_state_text(text) == state
    with pytest.raises(ValueError, match="the cards make soft 17"):
        parse_state_text(text.replace("soft 17", "hard 17"))
    with pytest.raises(ValueError, match="cannot read"):
        parse_state_text("hand\ndealer 9\ndecision 1, double allowed")


def test_config_rejects_unplayable_settings():
    with pytest.raises(ValueError, match="unknown kinds"):
        TwentyOneConfig(instruction_mix={"poker": 1.0})
    with pytest.raises(ValueError, match="reach_totals"):
        TwentyOneConfig(reach_totals=[25])


def test_functions_follow_the_plan(functions):
    hard16 = {"player": ["10", "6"], "total": 16, "soft": False, "dealer_up": "5", "decisions": 0,
              "can_double": True}
    plan = functions["goal_hard_hand"](hard16, None)
    assert plan == {"stand_at": 12, "min_cards": 0, "double": False}
    assert functions["act_follow_plan"](hard16, plan) == "stand"
    assert functions["act_follow_plan"](hard16, functions["goal_reach_total"](hard16, None, total=18)) == "hit"
    eleven = {**hard16, "player": ["5", "6"], "total": 11}
    assert functions["act_double_down"](eleven, functions["goal_hard_hand"](eleven, None)) == "double"
    assert functions["act_follow_plan"](eleven, functions["goal_card_count"](eleven, None, cards=2)) == "stand"
    with pytest.raises(ValueError, match="goal plan"):
        functions["act_follow_plan"](hard16, "stand")


def test_expert_depends_on_instruction_and_state():
    soft, hard = {"soft": True, "can_double": True}, {"soft": False, "can_double": True}
    names = list(FUNCTION_STAGES)
    assert expert_select("goal", ins.win(), soft, None, names) == ("goal_soft_hand", {})
    assert expert_select("goal", ins.win(), hard, None, names) == ("goal_hard_hand", {})
    assert expert_select("goal", ins.reach(19).text, hard, None, names) == ("goal_reach_total", {"total": 19})
    assert expert_select("goal", ins.cards(4), hard, None, names) == ("goal_card_count", {"cards": 4})
    doubling = {"stand_at": 17, "min_cards": 0, "double": True}
    assert expert_select("action", ins.win(), hard, doubling, names) == ("act_double_down", {})
    assert expert_select("action", ins.win(), {**hard, "can_double": False}, doubling, names)[0] == "act_follow_plan"


def test_expert_beats_the_majority_sequence(functions):
    env, seeds = TwentyOneEnv(), heldout_seeds(600)
    expert = [play_with_functions(env, s, env.sample_instruction(s),
                                  lambda st, i, state, prev: expert_select(st, i, state, prev, list(FUNCTION_STAGES)),
                                  functions) for s in seeds]
    fixed = {"goal": ("goal_hard_hand", {}), "action": ("act_follow_plan", {})}
    majority = [play_with_functions(env, s, env.sample_instruction(s), lambda st, i, state, prev: fixed[st], functions)
                for s in seeds]
    ours, theirs = aggregate_by(expert), aggregate_by(majority)
    assert ours["all"]["success_rate"] > theirs["all"]["success_rate"] + 0.1
    assert ours["cards"]["success_rate"] > theirs["cards"]["success_rate"] + 0.15
    assert {"win_rate", "bust_rate", "mean_reward"} <= set(ours["all"])


def test_aggregate_averages_env_scores_and_guards_reserved_names():
    episodes = [{"kind": "win", "success": True, "steps": 1, "decisions": 1, "invalid": 0,
                 "scores": {"win_rate": 1.0, "mean_reward": 2.0}},
                {"kind": "win", "success": False, "steps": 2, "decisions": 2, "invalid": 0,
                 "scores": {"win_rate": 0.0, "mean_reward": -1.0}}]
    summary = aggregate(episodes)
    assert summary["win_rate"] == 0.5 and summary["mean_reward"] == 0.5
    with pytest.raises(ValueError, match="may not reuse"):
        aggregate([{**episodes[0], "scores": {"success_rate": 1.0}}])


def test_registered_and_played_through_the_expert_teacher_text():
    cfg = RunConfig.model_validate({"task": {"env": "twentyone"}})
    env = make_env(cfg.task)
    assert isinstance(env, TwentyOneEnv)
    expert = expert_for("twentyone")
    reply = expert.function_base_reply()
    assert reply.startswith("```python") and "## Manual" in reply
    env.reset(7, env.sample_instruction(7))
    rng = random.Random(7)
    while not env.step(env.random_legal_decision(rng)).done:
        assert env.parse_state_text(env.render()) == env.state()
    assert json.dumps(env.episode_metrics())  # JSON-ready for the eval episode files


def test_results_table_carries_env_scores_as_columns():
    from ray_jobs.report import markdown_table

    row = {"success_rate": 0.5, "mean_steps": 1.5, "invalid_rate": 0.0, "episodes": 4, "win_rate": 0.25,
           "by_kind": {}}
    table = markdown_table({"teacher": row, "majority": {**row, "win_rate": 0.75}})
    header, _, teacher, majority = table.splitlines()
    assert header.endswith("| win_rate |") and teacher.endswith("| 0.250 |") and majority.endswith("| 0.750 |")

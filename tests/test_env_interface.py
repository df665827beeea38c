"""The contract every DecisionEnv keeps; a new environment joins by being added to ENVS."""

from __future__ import annotations

import random

import pytest

from generation.ld.envs.base import (HELDOUT_SEED_OFFSET, DecisionEnv, Instruction, StepResult, aggregate,
                                  aggregate_by, heldout_seeds, train_seeds)
from configs.task_schema import EmergencyConfig, PursuitConfig
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.twentyone.env import TwentyOneEnv


def PursuitWithEmergencies() -> PursuitEnv:
    return PursuitEnv(PursuitConfig(emergencies=EmergencyConfig(probability=1.0)))


ENVS = [PursuitEnv, PursuitWithEmergencies, TwentyOneEnv]


@pytest.fixture(params=ENVS, ids=lambda cls: cls.__name__)
def env(request) -> DecisionEnv:
    return request.param()


def _play_random(env: DecisionEnv, seed: int) -> list[str]:
    env.reset(seed, env.sample_instruction(seed))
    rng, texts = random.Random(seed), [env.render()]
    for _ in range(10_000):
        result = env.step(env.random_legal_decision(rng))
        assert isinstance(result, StepResult) and not result.invalid
        texts.append(env.render())
        if result.done:
            return texts
    raise AssertionError("random play never ended the episode")


def test_identity_and_rules(env):
    assert env.name and env.stages and len(set(env.stages)) == len(env.stages)
    assert len(env.rules_text()) > 100


def test_instructions_are_seeded_and_their_text_parses_back(env):
    for seed in train_seeds(30):
        instruction = env.sample_instruction(seed)
        assert instruction == env.sample_instruction(seed)
        assert env.parse_instruction(instruction.text) == instruction
    with pytest.raises(ValueError):
        env.parse_instruction("dance a little jig")


def test_state_text_round_trips_through_whole_episodes(env):
    for seed in train_seeds(5):
        env.reset(seed, env.sample_instruction(seed))
        rng = random.Random(seed)
        while True:
            assert env.parse_state_text(env.render()) == env.state()
            if env.step(env.random_legal_decision(rng)).done:
                break
        assert env.parse_state_text(env.render()) == env.state()


def test_same_seed_and_decisions_replay_identically(env):
    assert _play_random(env, 3) == _play_random(env, 3)
    assert _play_random(env, 3) != _play_random(env, 4)


def test_illegal_decision_is_counted_and_replaced_by_the_default(env):
    env.reset(0, env.sample_instruction(0))
    assert env.is_legal(env.default_decision()) and not env.is_legal("no such decision")
    result = env.step("no such decision")
    assert result.invalid
    metrics = env.episode_metrics()
    assert metrics["invalid"] == 1 and metrics["decisions"] == 1 and metrics["steps"] == 1


def test_stepping_a_finished_episode_is_an_error(env):
    _play_random(env, 1)
    with pytest.raises(RuntimeError):
        env.step(env.default_decision())


def test_episode_metrics_carry_what_aggregate_reads(env):
    _play_random(env, 2)
    metrics = env.episode_metrics()
    assert {"kind", "success", "steps", "decisions", "invalid"} <= set(metrics)
    assert aggregate([metrics])["episodes"] == 1


def test_last_stage_output_must_be_a_legal_decision(env):
    env.reset(0, env.sample_instruction(0))
    last = env.stages[-1]
    assert env.check_stage_output(last, env.state(), env.default_decision()) is None
    assert env.check_stage_output(last, env.state(), "garbage") is not None
    assert env.check_stage_output("no-such-stage", env.state(), None) is not None


def test_aggregate_arithmetic():
    episodes = [
        {"kind": "a", "success": True, "steps": 10, "decisions": 10, "invalid": 0},
        {"kind": "a", "success": True, "steps": 20, "decisions": 20, "invalid": 5},
        {"kind": "b", "success": False, "steps": 40, "decisions": 40, "invalid": 5},
        {"kind": "b", "success": False, "steps": 30, "decisions": 30, "invalid": 0},
    ]
    assert aggregate(episodes) == {"success_rate": 0.5, "mean_steps": 15.0, "invalid_rate": 0.1, "episodes": 4}
    by_kind = aggregate_by(episodes)
    assert by_kind["b"]["mean_steps"] is None and by_kind["b"]["success_rate"] == 0.0
    assert by_kind["a"]["invalid_rate"] == pytest.approx(5 / 30) and by_kind["all"]["episodes"] == 4
    assert aggregate([]) == {"success_rate": 0.0, "mean_steps": None, "invalid_rate": 0.0, "episodes": 0}


def test_seed_splits_are_disjoint_and_bounded():
    train, held = train_seeds(5000), heldout_seeds(5000)
    assert len(set(train)) == 5000 and not set(train) & set(held)
    assert min(held) == HELDOUT_SEED_OFFSET and max(train) < HELDOUT_SEED_OFFSET
    assert DecisionEnv.train_seeds(3) == [0, 1, 2]
    with pytest.raises(ValueError):
        train_seeds(HELDOUT_SEED_OFFSET + 1)
    with pytest.raises(ValueError):
        heldout_seeds(-1)


def test_instruction_is_immutable_data():
    instruction = Instruction(kind="k", params={"a": 1}, text="t")
    assert Instruction(**instruction.model_dump()) == instruction
    with pytest.raises(Exception):
        Instruction(kind="k", text="t", extra=1)

"""The `evader` emergency family: a new kind of evader (a sprinter) joins mid-episode (docs/emergencies.md)."""

from __future__ import annotations

from configs.schema import RunConfig
from configs.task_schema import EMERGENCY_KINDS, EmergencyConfig, PursuitConfig, evader_kinds
from generation.ld.envs.base import train_seeds
from generation.ld.envs.pursuit import instructions as ins
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.pursuit.expert import expert_select
from generation.ld.envs.pursuit.new_evaders import sprinter_path
from generation.ld.envs.pursuit.offline_eval import (emergency_functions, expert_chooser, load_teacher_functions,
                                                  play_with_functions)
from generation.ld.envs.pursuit.resources import emergency_reply, function_base_reply
from generation.ld.functions.function_base import build_function_base
from generation.ld.functions.runtime import build_runtime_functions, stage_samples
from generation.sandbox.runner import Sandbox
from generation.teachers.expert import ExpertTeacher
from tests.emergency_play import config_and_base, play

HARE_AT_ONCE = EmergencyConfig(probability=1.0, onset_steps=[1, 1], train_kinds=["hare"], heldout_kinds=["lynx"])


def _announced(seed=3):
    env = PursuitEnv(PursuitConfig(emergencies=HARE_AT_ONCE))
    env.reset(seed, env.sample_instruction(seed))
    env.step(env.default_decision())
    return env


def test_family_kinds_are_opt_in():
    assert {EMERGENCY_KINDS[k] for k in evader_kinds() + evader_kinds(heldout=True)} == {"evader"}
    assert not set(evader_kinds()) & set(EmergencyConfig().train_pool + EmergencyConfig().heldout_kinds)


def test_new_evader_appears_at_onset_and_text_state_and_data_agree():
    env = _announced()
    [emergency] = env.emergencies()
    state = env.state()
    assert emergency.kind == "hare" and "E3" in emergency.text and "two runs" in emergency.text
    [entry] = state["emergencies"]
    assert entry["kind"] == "hare" and entry["cells"] == [state["evaders"]["E3"]]
    assert f"E3 {entry['cells'][0][0]},{entry['cells'][0][1]} free" in env.render()
    assert "emergency (hare) " in env.render() and env.parse_state_text(env.render()) == state
    copy = PursuitEnv(PursuitConfig(emergencies=HARE_AT_ONCE))
    copy.load_state(state, env.instruction)
    assert copy.state() == state and copy.emergencies()[0].kind == "hare"


def test_sprinter_runs_two_cells_by_its_rule_and_the_emergency_follows_it():
    env = _announced()
    state = env.state()
    grid = env._evader_grid
    here = tuple(state["evaders"]["E3"])
    expected = sprinter_path(grid, [tuple(c) for c in state["pursuers"].values()], here,
                             {tuple(c) for e, c in state["evaders"].items() if e != "E3"})
    env.step(env.default_decision())
    assert abs(expected[2][0] - here[0]) + abs(expected[2][1] - here[1]) in (0, 2)
    assert env.state()["evaders"]["E3"] == list(expected[2])
    assert env.state()["emergencies"][0]["cells"] == [list(expected[2])]


def test_expert_function_passes_validation_and_is_preferred():
    env = _announced()
    cfg = RunConfig()
    base, _ = build_function_base(function_base_reply(), env.stages, [env.state()], cfg.sandbox,
                                  env.check_stage_output, "base")
    with Sandbox(cfg.sandbox) as box:
        box.load(base.sources())
        samples = stage_samples(base, box, [env.state()], env.stages)
        accepted, records = build_runtime_functions(emergency_reply("hare", ""), env.stages, samples, cfg.sandbox,
                                                    env.check_stage_output, "e", "hare", set(base.functions))
    assert [f.name for f in accepted] == ["move_hare"] and all(r.accepted for r in records)
    assert expert_select("move", ins.capture_all(), env.state(), {"P1": "E3"}, ["move_direct", "move_hare"])[0] \
        == "move_hare"


def test_episode_with_the_sprinter_plays_to_the_end_through_runtime_addition(tmp_path):
    cfg, _, base_path = config_and_base(tmp_path, HARE_AT_ONCE)
    [episode], base, _, loaded = play(cfg, base_path, ExpertTeacher, [5])
    assert episode.done and episode.runtime_functions == ["move_hare"] and "move_hare" in loaded
    assert episode.runtime_calls > 0 and episode.result["invalid"] == 0


def test_the_function_for_it_wins_more_than_the_base_functions():
    env = PursuitEnv(PursuitConfig(emergencies=HARE_AT_ONCE))
    base = load_teacher_functions()
    functions = {**base, "move_hare": emergency_functions()["move_hare"]}
    wins = {}
    for label, names in (("with", list(functions)), ("without", list(base))):
        wins[label] = sum(play_with_functions(env, s, env.sample_instruction(s), expert_chooser(names),
                                              functions)["success"] for s in train_seeds(12))
    assert wins["with"] > wins["without"]

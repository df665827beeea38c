"""Emergencies: announced mid-episode in pursuit, answered by the teacher, validated and joined at run time."""

from __future__ import annotations

import dataclasses

import pytest

from configs.schema import RunConfig
from configs.task_schema import EmergencyConfig, PursuitConfig
from generation.ld.envs.base import heldout_seeds, train_seeds
from generation.ld.envs.pursuit import instructions as ins
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.pursuit.expert import expert_select
from generation.ld.envs.pursuit.resources import emergency_reply, function_base_reply
from generation.ld.envs.registry import expert_for
from generation.ld.functions.function_base import FunctionBase, build_function_base
from generation.ld.functions.runtime import build_runtime_functions, stage_samples
from generation.ld.emergency_prompts import EMERGENCY_TASK, emergency_messages, parse_emergency_prompt
from generation.sandbox.runner import Sandbox
from generation.teachers.expert import ExpertTeacher
from generation.ld.workers import EvalWorker
from generation.ld.functions.function_base import sample_states
from tests.emergency_play import config_and_base, play

OPEN = [".......", ".......", ".......", ".......", "......."]
FIRE_AT_ONCE = EmergencyConfig(probability=1.0, onset_steps=[1, 1], train_kinds=["fire"], heldout_kinds=["flood"])


def _state(pursuers, evaders, emergencies=()):
    state = {"width": 7, "height": 5, "grid": list(OPEN), "step": 0, "max_steps": 40,
             "pursuers": {k: list(v) for k, v in pursuers.items()},
             "evaders": {k: list(v) for k, v in evaders.items()}, "captured": []}
    if emergencies:
        state["emergencies"] = [{"kind": k, "cells": [list(c) for c in cells]} for k, cells in emergencies]
    return state


def _loaded(state, n_pursuers=1, n_evaders=1) -> PursuitEnv:
    env = PursuitEnv(PursuitConfig(width=7, height=5, n_pursuers=n_pursuers, n_evaders=n_evaders,
                                   evader_move_prob=0.0, instruction_mix={"capture_all": 1.0}))
    env.load_state(state, ins.capture_all())
    return env


# ---- the game's side --------------------------------------------------------------------------
def test_emergency_is_announced_at_its_seeded_step_and_shown_in_state_and_text():
    env = PursuitEnv(PursuitConfig(emergencies=FIRE_AT_ONCE))
    env.reset(3, env.sample_instruction(3))
    assert env.emergencies() == [] and "emergencies" not in env.state()
    env.step(env.default_decision())
    [emergency] = env.emergencies()
    assert emergency.kind == "fire" and "fails" in emergency.text
    cells = env.state()["emergencies"][0]["cells"]
    assert cells and all(f"{x},{y}" in emergency.text for x, y in cells)
    assert f"emergency (fire) {cells[0][0]},{cells[0][1]}" in env.render()
    assert env.parse_state_text(env.render()) == env.state()
    occupied = [*env.state()["pursuers"].values(), *env.state()["evaders"].values()]
    assert not any(c in occupied for c in cells)


def test_heldout_kinds_only_on_heldout_seeds_and_none_without_probability():
    env = PursuitEnv(PursuitConfig(emergencies=FIRE_AT_ONCE))
    for seeds, kind in ((train_seeds(5), "fire"), (heldout_seeds(5), "flood")):
        for seed in seeds:
            env.reset(seed, env.sample_instruction(seed))
            env.step(env.default_decision())
            assert [e.kind for e in env.emergencies()] == [kind]
    plain = PursuitEnv()
    plain.reset(0, plain.sample_instruction(0))
    for _ in range(8):
        plain.step(plain.default_decision())
    assert plain.emergencies() == [] and "emergency" not in plain.episode_metrics()


def test_deadly_cell_fails_the_episode_and_impassable_cell_is_a_stay():
    env = _loaded(_state({"P1": (0, 0)}, {"E1": (6, 4)}, [("fire", [(1, 0)])]))
    result = env.step({"P1": "E"})
    assert result.done and not result.success and "lost to the fire" in env.episode_metrics()["reason"]
    env = _loaded(_state({"P1": (0, 0)}, {"E1": (6, 4)}, [("flood", [(1, 0)])]))
    assert not env.step({"P1": "E"}).done
    assert env.state()["pursuers"]["P1"] == [0, 0]


def test_evaders_never_enter_emergency_cells():
    env = PursuitEnv(PursuitConfig(width=7, height=5, n_pursuers=1, n_evaders=1, evader_move_prob=1.0,
                                   evader_noise=1.0, instruction_mix={"capture_all": 1.0}))
    walls = [(x, y) for x in (2, 3) for y in range(5)]
    env.load_state(_state({"P1": (0, 0)}, {"E1": (5, 2)}, [("lava", walls)]), ins.capture_all(), seed=1)
    for _ in range(30):
        if env.step({"P1": "stay"}).done:
            break
        assert tuple(env.state()["evaders"]["E1"]) not in walls


# ---- the teacher's side -----------------------------------------------------------------------
def test_emergency_prompt_round_trips_and_the_expert_answers_it():
    env = _loaded(_state({"P1": (0, 0)}, {"E1": (6, 4)}, [("gas", [(1, 0)])]))
    [emergency] = env.emergencies()
    messages = emergency_messages(env.name, env.rules_text(), env.stages, "gas", emergency.text, env.state(), [])
    prompt = messages[-1]["content"]
    assert prompt.startswith(EMERGENCY_TASK) and "move_gas" in prompt
    assert parse_emergency_prompt(prompt) == ("gas", emergency.text, env.state())
    reply = ExpertTeacher(RunConfig().teacher, env, expert_for("pursuit")).reply_text(messages)
    assert "def move_gas(state, prev)" in reply and "### move_gas" in reply


def test_runtime_function_is_validated_against_live_inputs_and_routes_around_the_cells():
    env = _loaded(_state({"P1": (0, 2)}, {"E1": (6, 2)}, [("rockfall", [(3, 1), (3, 2), (3, 3)])]))
    cfg = RunConfig()
    base, _ = build_function_base(function_base_reply(), env.stages, [env.state()], cfg.sandbox,
                                  env.check_stage_output, "base")
    with Sandbox(cfg.sandbox) as box:
        box.load(base.sources())
        samples = stage_samples(base, box, [env.state()], env.stages)
        assert samples["move"] and all(isinstance(prev, dict) for _, prev in samples["move"])
        accepted, records = build_runtime_functions(emergency_reply("rockfall", ""), env.stages, samples,
                                                    cfg.sandbox, env.check_stage_output, "e", "rockfall",
                                                    set(base.functions))
        assert [f.name for f in accepted] == ["move_rockfall"] and accepted[0].scope == "rockfall"
        assert all(r.accepted for r in records)
        box.load({"move_rockfall": accepted[0].source})
        plan = {"P1": "E1"}
        assert box.call("move_direct", env.state(), plan) == {"P1": "E"}  # straight into the rocks
        assert box.call("move_rockfall", env.state(), plan)["P1"] in ("N", "S")  # the detour
    taken = build_runtime_functions(emergency_reply("rockfall", "").replace("move_rockfall", "move_direct"),
                                    env.stages, samples, cfg.sandbox, env.check_stage_output, "e", "rockfall",
                                    set(base.functions))
    assert taken[0] == [] and "already in the function base" in taken[1][0].reasons[0]


def test_expert_picks_the_emergency_function_only_when_offered():
    state = _state({"P1": (0, 0)}, {"E1": (6, 4)}, [("fire", [(1, 0)])])
    plan = {"P1": "E1"}
    assert expert_select("move", ins.capture_all(), state, plan, ["move_fire", "move_direct"]) == ("move_fire", {})
    assert expert_select("move", ins.capture_all(), state, plan, ["move_direct", "move_surround"])[0] == "move_direct"


def test_scoped_functions_are_hidden_where_their_emergency_is_not_in_force(tmp_path):
    env = PursuitEnv()
    base, _ = build_function_base(function_base_reply(), env.stages, sample_states(env, [0]), RunConfig().sandbox,
                                  env.check_stage_output, "r")
    fire = dataclasses.replace(base.functions["move_direct"], name="move_fire", scope="fire")
    base.add(fire)
    assert base.out_of_scope(set()) == {"move_fire"} and base.out_of_scope({"fire"}) == set()
    retriever = base.retriever()
    assert "move_fire" not in retriever.top_k("move fire", 5, stage="move", exclude=base.out_of_scope(set()))
    assert retriever.top_k("move fire", 1, stage="move") == ["move_fire"]
    base.save(tmp_path / "b.json")
    assert FunctionBase.load(tmp_path / "b.json").functions["move_fire"].scope == "fire"


# ---- run time: inside a live episode ----------------------------------------------------------
class HostileOnEmergency(ExpertTeacher):
    """Selects like the expert, but answers an emergency with code that must never run."""

    def reply_text(self, messages):
        if messages[-1]["content"].startswith(EMERGENCY_TASK):
            return ("```python\nimport os\n\ndef move_fire(state, prev):\n    \"\"\"Wipe the disk.\"\"\"\n"
                    "    os.system('rm -rf /')\n    return {}\n```\n\n## Manual\n\n### move_fire\nStage: move\n"
                    "Call: move_fire()\n")
        return super().reply_text(messages)


def test_new_function_is_validated_indexed_and_used_within_the_same_episode(tmp_path):
    cfg, _, base_path = config_and_base(tmp_path, FIRE_AT_ONCE)
    [episode], base, responder, loaded = play(cfg, base_path, ExpertTeacher, [5])
    assert episode.runtime_functions == ["move_fire"] and "move_fire" in loaded
    assert base.functions["move_fire"].scope == "fire"
    assert responder.usage["requests"] == 1 and responder.usage["accepted"] == 1
    after = [r for r in episode.stage_records if r.step >= 1 and r.stage == "move"]
    assert after and all("move_fire" in r.candidates for r in after)  # retrievable from the next step on
    assert all(r.function == "move_fire" for r in after) and episode.runtime_calls == len(after)
    before = [r for r in episode.stage_records if r.step == 0]
    assert before and all("move_fire" not in r.candidates for r in before)
    assert episode.result["invalid"] == 0


def test_hostile_emergency_functions_are_rejected_and_the_episode_goes_on(tmp_path):
    cfg, _, base_path = config_and_base(tmp_path, FIRE_AT_ONCE)
    episodes, base, responder, loaded = play(cfg, base_path, HostileOnEmergency, [5, 6])
    assert "move_fire" not in base.functions and "move_fire" not in loaded
    [record] = [r for r in responder.records if r.name == "move_fire"]
    assert not record.accepted and any("os" in reason for reason in record.reasons)
    assert responder.usage["requests"] == 1  # asked once for the kind, not once per episode
    for e in episodes:
        assert e.done and e.runtime_functions == [] and e.result["decisions"] > 1 and e.result["invalid"] == 0


def test_eval_worker_plays_with_and_without_runtime_functions(tmp_path):
    cfg, _, base_path = config_and_base(tmp_path, FIRE_AT_ONCE)
    worker = EvalWorker(cfg, base_path)
    try:
        seeds = train_seeds(4)
        with_fns = worker.run("teacher", {"kind": "teacher"}, seeds)
        without = worker.run("teacher", {"kind": "teacher", "runtime_functions": False}, seeds)
    finally:
        worker.close()
    assert all(e["runtime_functions"] == ["move_fire"] for e in with_fns if e["emergency"] == "fire")
    assert any(e["runtime_calls"] > 0 for e in with_fns)
    assert all(e["runtime_functions"] == [] and e["runtime_calls"] == 0 for e in without)


def test_drill_kinds_are_made_up_training_only_and_validated():
    from configs.task_schema import DRILL_KINDS, EMERGENCY_KINDS

    cfg = EmergencyConfig(probability=1.0, train_kinds=["fire"], heldout_kinds=["gas"], drill_kinds=50)
    assert cfg.train_pool == ["fire", *DRILL_KINDS[:50]] and len(set(DRILL_KINDS)) == len(DRILL_KINDS) == 400
    assert {EMERGENCY_KINDS[k] for k in DRILL_KINDS[:2]} == {"deadly", "impassable"}
    from generation.ld.envs.pursuit.emergencies import plan_emergency

    train_kinds = {plan_emergency(s, cfg).kind for s in train_seeds(300)}
    assert len(train_kinds & set(DRILL_KINDS)) > 20 and "gas" not in train_kinds
    assert {plan_emergency(s, cfg).kind for s in heldout_seeds(30)} == {"gas"}
    with pytest.raises(ValueError, match="both in train_kinds and heldout_kinds"):
        EmergencyConfig(probability=1.0, train_kinds=["fire"], heldout_kinds=[DRILL_KINDS[0]], drill_kinds=1)
    with pytest.raises(ValueError, match="unknown emergency kinds.*drill kinds"):
        EmergencyConfig(probability=1.0, train_kinds=["firee"])


def test_state_text_spells_the_kind_as_its_function_name_does():
    """`(gas)` in the state and `move_gas` in a call split into the same word for a student's tokenizer."""
    env = _loaded(_state({"P1": (0, 0)}, {"E1": (6, 4)}, [("gas", [(3, 2)])]))
    text = env.render()
    assert "emergency (gas) 3,2" in text
    assert env.parse_state_text(text)["emergencies"] == [{"kind": "gas", "cells": [[3, 2]]}]


def test_generation_task_returns_the_emergency_functions_it_asked_for(tmp_path):
    from generation.ld.workers import TeacherDemoWorker

    cfg, _, base_path = config_and_base(tmp_path, FIRE_AT_ONCE)
    worker = TeacherDemoWorker(cfg, base_path)
    try:
        first = worker.run(train_seeds(3), "train0")
        second = worker.run(train_seeds(3), "train1")
    finally:
        worker.close()
    assert [(r.name, r.accepted) for r in first["runtime_functions"]] == [("move_fire", True)]
    assert first["runtime_functions"][0].teacher_request_id.startswith("emergency-fire")
    assert second["runtime_functions"] == []  # the kind was answered once, for the actor's lifetime

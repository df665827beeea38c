"""The pursuit game: rules, instructions, text format, function base and expert."""

from __future__ import annotations

import ast
import random
import re

import pytest

from generation.ld.envs.base import aggregate, heldout_seeds, train_seeds
from generation.ld.envs.pursuit import instructions as ins
from generation.ld.envs.pursuit.config import PursuitConfig
from generation.ld.envs.pursuit.env import PursuitEnv, captured_evaders
from generation.ld.envs.pursuit.evaders import choose_evader_moves
from generation.ld.envs.pursuit.expert import FUNCTION_STAGES, expert_select
from generation.ld.envs.pursuit.grid import Grid
from generation.ld.envs.pursuit.offline_eval import (expert_chooser, fixed_chooser, load_teacher_functions,
                                                  play_with_functions)
from generation.ld.envs.pursuit.resources import manual_text, teacher_functions_source

OPEN = [".....", ".#...", ".....", ".....", "....."]
STILL = PursuitConfig(evader_move_prob=0.0)  # evaders never move: positions are the test's to set
ALLOWED_IMPORTS = {"math", "collections", "heapq", "itertools", "functools"}


def make_state(pursuers, evaders, rows=OPEN, captured=(), step=0, max_steps=40):
    return {"width": len(rows[0]), "height": len(rows), "grid": list(rows), "step": step, "max_steps": max_steps,
            "pursuers": {k: list(v) for k, v in pursuers.items()},
            "evaders": {k: list(v) for k, v in evaders.items()}, "captured": list(captured)}


def loaded(state, instruction=None, config=STILL, seed=0) -> PursuitEnv:
    env = PursuitEnv(config)
    env.load_state(state, instruction or ins.capture_all(), seed)
    return env


def act(**actions):
    return {"P1": "stay", "P2": "stay", "P3": "stay", **actions}


FAR = {"P1": (0, 0), "P2": (1, 2), "P3": (4, 4)}


# ---- rules -------------------------------------------------------------------------------------
def test_moves_follow_the_compass_and_walls_or_edges_mean_stay():
    env = loaded(make_state(FAR, {"E1": (4, 0), "E2": (3, 2)}))
    result = env.step(act(P1="N", P2="N", P3="S"))  # edge, wall at (1,1), edge
    assert not result.invalid
    assert env.state()["pursuers"] == {"P1": [0, 0], "P2": [1, 2], "P3": [4, 4]}
    env.step(act(P1="E", P2="W", P3="N"))
    assert env.state()["pursuers"] == {"P1": [1, 0], "P2": [0, 2], "P3": [4, 3]}
    env.step(act(P1="S", P2="S"))  # (1,1) is a wall; (0,3) is free
    assert env.state()["pursuers"] == {"P1": [1, 0], "P2": [0, 3], "P3": [4, 3]}


def test_pursuer_landing_on_an_evader_captures_it():
    env = loaded(make_state(FAR, {"E1": (1, 0), "E2": (4, 2)}))
    result = env.step(act(P1="E"))
    assert result.info["captured"] == ["E1"] and not result.done
    assert env.state()["captured"] == ["E1"] and "E1" not in env.state()["evaders"]


def test_swapping_cells_is_a_capture():
    assert captured_evaders({"P1": (1, 2)}, {"P1": (0, 2)}, {"E1": (0, 2)}, {"E1": (1, 2)}) == ["E1"]
    assert captured_evaders({"P1": (1, 2)}, {"P1": (1, 1)}, {"E1": (0, 2)}, {"E1": (1, 2)}) == []
    assert captured_evaders({"P1": (3, 3)}, {"P1": (3, 3)}, {"E1": (0, 2)}, {"E1": (1, 2)}) == []


def test_a_dead_end_evader_is_caught_whether_it_stays_or_swaps():
    corridor = ["#####", "#####", ".....", "#####", "#####"]
    grid = Grid(corridor)
    # With noise 1 the evader picks at random between staying and the pursuer's cell.
    picks = {choose_evader_moves(grid, [(1, 2)], {"E1": (0, 2)}, random.Random(s), 1.0, 1.0)["E1"]
             for s in range(20)}
    assert picks == {(0, 2), (1, 2)}
    config = PursuitConfig(n_pursuers=1, n_evaders=1, evader_move_prob=1.0, evader_noise=1.0,
                           instruction_mix={"capture_all": 1.0})
    for seed in range(20):
        env = PursuitEnv(config)
        env.load_state(make_state({"P1": (1, 2)}, {"E1": (0, 2)}, rows=corridor), ins.capture_all(), seed)
        assert env.step({"P1": "W"}).success


def test_step_limit_ends_the_episode_as_a_failure():
    env = loaded(make_state(FAR, {"E1": (4, 0), "E2": (3, 2)}, max_steps=3))
    results = [env.step(act()) for _ in range(3)]
    assert [r.done for r in results] == [False, False, True]
    assert not results[-1].success and results[-1].info["reason"] == "step limit reached"
    assert env.episode_metrics()["steps"] == 3


def test_default_step_limit_is_the_configs():
    env = PursuitEnv(PursuitConfig(max_steps=5))
    env.reset(7, ins.capture_all())
    assert env.state()["max_steps"] == 5
    for _ in range(5):
        result = env.step(env.default_decision())
    assert result.done


# ---- instructions ------------------------------------------------------------------------------
NEXT_TO_BOTH = {"P1": (3, 0), "P2": (2, 3), "P3": (0, 4)}  # P1 beside E1 (4,0), P2 beside E2 (3,3)
EVADERS = {"E1": (4, 0), "E2": (3, 3)}


def test_capture_all_succeeds_when_the_last_evader_falls():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS))
    assert not env.step(act(P1="E")).done
    result = env.step(act(P2="E"))
    assert result.done and result.success and env.episode_metrics()["steps"] == 2


def test_capture_first_in_order_succeeds():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS), ins.capture_first("E2"))
    assert not env.step(act(P2="E")).done
    assert env.step(act(P1="E")).success
    assert env.state()["captured"] == ["E2", "E1"]


def test_capture_first_out_of_order_fails_at_once():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS), ins.capture_first("E2"))
    result = env.step(act(P1="E"))
    assert result.done and not result.success and "E1 was captured before E2" in result.info["reason"]


def test_capture_first_allows_capturing_both_in_the_same_step():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS), ins.capture_first("E2"))
    assert env.step(act(P1="E", P2="E")).success


GUARD = ins.guard("P3", [0, 4])


def test_guard_holding_its_cell_while_the_others_capture_succeeds():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS), GUARD)
    assert env.step(act(P1="E", P2="E")).success


def test_guard_leaving_its_cell_fails_at_once():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS), GUARD)
    result = env.step(act(P3="N"))
    assert result.done and not result.success and "left its guard cell" in result.info["reason"]


def test_guard_not_on_its_cell_when_the_last_evader_falls_fails():
    start = {**NEXT_TO_BOTH, "P3": (2, 4)}
    env = loaded(make_state(start, EVADERS), GUARD)
    result = env.step(act(P1="E", P2="E"))
    assert result.done and not result.success and "not on its guard cell" in result.info["reason"]
    env = loaded(make_state(start, EVADERS), GUARD)  # walking onto the cell first is fine
    assert not env.step(act(P3="W")).done and not env.step(act(P3="W")).done
    assert env.step(act(P1="E", P2="E")).success


def test_instructions_parse_from_their_text_and_reject_the_rest():
    for instruction in (ins.capture_all(), ins.capture_first("E2"), ins.guard("P2", [4, 6])):
        assert ins.parse_instruction(instruction.text) == instruction
    assert ins.parse_instruction("p1 must guard cell (3, 4) while the others capture all evaders").params == {
        "pursuer": "P1", "cell": [3, 4]}
    with pytest.raises(ValueError, match="not a pursuit instruction"):
        ins.parse_instruction("Capture E2 last.")


def test_reset_rejects_instructions_this_map_cannot_play():
    env = PursuitEnv()
    wall = next((x, y) for y, row in enumerate(env._map(0).rows) for x, ch in enumerate(row) if ch == "#")
    with pytest.raises(ValueError, match="not a free cell"):
        env.reset(0, ins.guard("P2", wall))
    with pytest.raises(ValueError, match="E7"):
        env.reset(0, ins.capture_first("E7"))
    with pytest.raises(ValueError, match="P9"):
        env.reset(0, ins.guard("P9", env._map(0).free[0]))


def test_sampled_instructions_cover_every_kind_and_play_on_their_map():
    env = PursuitEnv()
    kinds = set()
    for seed in train_seeds(60):
        instruction = env.sample_instruction(seed)
        env.reset(seed, instruction)
        kinds.add(instruction.kind)
    assert kinds == {"capture_all", "capture_first", "guard"}


# ---- maps, seeds, text -------------------------------------------------------------------------
def test_maps_are_connected_seeded_and_respect_start_distance():
    env = PursuitEnv()
    maps = set()
    for seed in train_seeds(20):
        env.reset(seed, ins.capture_all())
        state = env.state()
        grid = Grid(state["grid"])
        assert grid.is_connected() and 0 < sum(r.count("#") for r in state["grid"]) <= 13
        danger = grid.distances([tuple(c) for c in state["pursuers"].values()])
        assert all(danger[tuple(c)] >= 3 for c in state["evaders"].values())
        maps.add(tuple(state["grid"]))
        again = PursuitEnv()
        again.reset(seed, ins.capture_all())
        assert again.state() == state
    assert len(maps) == 20


def test_render_shows_distances_and_capture_order_and_parses_back():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS))
    env.step(act(P2="E"))
    text = env.render()
    assert "E2 captured 1st" in text and "E1 4,0 free near 1" in text and "P2 3,3" in text
    assert env.parse_state_text(text) == env.state()
    with pytest.raises(ValueError, match="cannot read state line"):
        env.parse_state_text(text + "\nQ7 hello")
    with pytest.raises(ValueError):
        env.parse_state_text("hello")


def test_invalid_decisions_are_counted_and_everyone_stays():
    env = loaded(make_state(NEXT_TO_BOTH, EVADERS))
    before = env.state()["pursuers"]
    for bad in ({"P1": "E"}, act(P1="up"), {**act(P1="E"), "P4": "N"}, None, ["E", "E", "E"]):
        assert env.step(bad).invalid
    assert env.state()["pursuers"] == before
    assert not env.step(act(P1="E")).invalid
    metrics = env.episode_metrics()
    assert (metrics["invalid"], metrics["decisions"]) == (5, 6)
    assert aggregate([metrics])["invalid_rate"] == pytest.approx(5 / 6)


def test_config_rejects_unplayable_settings():
    with pytest.raises(ValueError, match="unknown kinds"):
        PursuitConfig(instruction_mix={"capture_some": 1.0})
    with pytest.raises(ValueError, match="n_evaders >= 2"):
        PursuitConfig(n_evaders=1)
    with pytest.raises(ValueError, match="extra"):
        PursuitConfig(board_size=9)


# ---- function base -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def functions():
    return load_teacher_functions()


def sample_states(n=12):
    env, rng, out = PursuitEnv(), random.Random(0), []
    for seed in heldout_seeds(n):
        env.reset(seed, env.sample_instruction(seed))
        for _ in range(rng.randrange(0, 12)):
            if env.step(env.random_legal_decision(rng)).done:
                break
        out.append(env.state())
    out.append(make_state(FAR, {}, captured=["E2", "E1"]))  # nothing left to chase
    return out


EXAMPLE_KWARGS = {"target_evader": {"evader": "E2"}, "guard_cell": {"pursuer": "P2", "cell": [4, 4]}}


def test_text_uses_only_allowed_imports_and_private_helpers():
    tree = ast.parse(teacher_functions_source())
    public = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= ALLOWED_IMPORTS
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in ALLOWED_IMPORTS
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            public.add(node.name)
            assert [a.arg for a in node.args.args[:2]] == ["state", "prev"] and ast.get_docstring(node)
        elif isinstance(node, ast.FunctionDef):
            continue
        else:
            assert isinstance(node, ast.Assign) and all(t.id.startswith("_") for t in node.targets)
    assert public == set(FUNCTION_STAGES)


def test_each_function_is_self_contained_with_the_shared_helpers():
    """What a per-function loader sees: imports + private helpers + one public def."""
    source = teacher_functions_source()
    tree = ast.parse(source)
    shared = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and not n.name.startswith("_"))]
    state = sample_states(1)[0]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            namespace: dict = {}
            exec(compile(ast.Module(body=[*shared, node], type_ignores=[]), node.name, "exec"), namespace)
            prev = {p: "E1" for p in state["pursuers"]} if FUNCTION_STAGES[node.name] == "move" else None
            namespace[node.name](state, prev, **EXAMPLE_KWARGS.get(node.name, {}))


def test_every_function_returns_its_documented_shape(functions):
    env = PursuitEnv()
    for state in sample_states():
        for name in ("target_nearest", "target_evader", "guard_cell", "spread_out"):
            plan = functions[name](state, None, **EXAMPLE_KWARGS.get(name, {}))
            assert env.check_stage_output("target", state, plan) is None, (name, plan)
            for mover in ("move_direct", "move_surround", "move_ambush"):
                moves = functions[mover](state, plan)
                assert env.check_stage_output("move", state, moves) is None, (mover, moves)


def test_function_semantics_on_a_known_position(functions):
    state = make_state({"P1": (0, 0), "P2": (2, 2), "P3": (4, 4)}, {"E1": (2, 0), "E2": (4, 3)})
    assert functions["target_nearest"](state, None) == {"P1": "E1", "P2": "E1", "P3": "E2"}
    assert functions["target_evader"](state, None, evader="E2") == {"P1": "E2", "P2": "E2", "P3": "E2"}
    # (1,1) is a wall: it snaps to the nearest free cell, ties to the northern one.
    assert functions["guard_cell"](state, None, pursuer="P2", cell="1,1") == {"P1": "E1", "P2": [1, 0], "P3": "E2"}
    plan = {"P1": "E1", "P2": [2, 3], "P3": "E2"}
    assert functions["move_direct"](state, plan) == {"P1": "E", "P2": "S", "P3": "N"}
    assert functions["move_ambush"](state, plan) == {"P1": "stay", "P2": "stay", "P3": "N"}
    surround = functions["move_surround"](state, {"P1": "E1", "P2": "E1", "P3": "E2"})
    assert surround["P1"] == "E" and surround["P2"] in ("E", "N")
    with pytest.raises(ValueError, match="unknown evader"):
        functions["target_evader"](state, None, evader="E9")
    with pytest.raises(ValueError, match="target plan"):
        functions["move_direct"](state, None)


def test_manual_documents_every_function_with_stage_and_a_call_example():
    manual = manual_text()
    assert manual.startswith("## Manual")
    entries = dict(re.findall(r"^### (\w+)\n(.*?)(?=^### |\Z)", manual, re.MULTILINE | re.DOTALL))
    assert set(entries) == set(FUNCTION_STAGES)
    signatures = {n.name: [a.arg for a in n.args.args[2:]] for n in ast.parse(teacher_functions_source()).body
                  if isinstance(n, ast.FunctionDef)}
    for name, entry in entries.items():
        assert f"Stage: {FUNCTION_STAGES[name]}" in entry
        call = ast.parse(re.search(r"^Call: (.*)$", entry, re.MULTILINE).group(1), mode="eval").body
        assert call.func.id == name and [k.arg for k in call.keywords] == signatures[name]


# ---- expert ------------------------------------------------------------------------------------
ALL = list(FUNCTION_STAGES)


def test_expert_follows_the_instruction_and_the_state():
    state = make_state(FAR, EVADERS)
    assert expert_select("target", ins.capture_all(), state, None, ALL) == ("target_nearest", {})
    assert expert_select("target", ins.capture_first("E2"), state, None, ALL) == ("target_evader", {"evader": "E2"})
    done_e2 = make_state(FAR, {"E1": (4, 0)}, captured=["E2"])
    assert expert_select("target", ins.capture_first("E2"), done_e2, None, ALL) == ("target_nearest", {})
    assert expert_select("target", GUARD.text, state, None, ALL) == ("guard_cell", {"pursuer": "P3", "cell": [0, 4]})
    shared, split = {"P1": "E1", "P2": "E1", "P3": "E2"}, {"P1": "E1", "P2": [0, 4], "P3": "E2"}
    assert expert_select("move", ins.capture_all(), state, shared, ALL) == ("move_surround", {})
    assert expert_select("move", ins.capture_all(), state, split, ALL) == ("move_direct", {})


def test_expert_falls_back_within_the_stage():
    state = make_state(FAR, EVADERS)
    assert expert_select("target", ins.capture_first("E2"), state, None,
                         ["move_direct", "target_nearest", "spread_out"]) == ("target_nearest", {})
    assert expert_select("target", ins.capture_all(), state, None,
                         ["target_evader", "spread_out"]) == ("target_evader", {"evader": "E2"})
    assert expert_select("move", ins.capture_all(), state, {"P1": "E1", "P2": "E1", "P3": "E1"},
                         ["move_ambush", "move_direct"]) == ("move_direct", {})
    assert expert_select("move", ins.capture_all(), state, None, ["move_ambush"]) == ("move_ambush", {})
    assert expert_select("move", ins.capture_all(), state, None, ["brand_new"]) == ("brand_new", {})
    with pytest.raises(ValueError):
        expert_select("target", ins.capture_all(), state, None, [])


def test_expert_beats_the_majority_sequence(functions):
    env, seeds = PursuitEnv(), heldout_seeds(8)
    plan = [(s, i) for s, i in zip(seeds, [ins.capture_all()] * 8)]
    plan += [(s, ins.capture_first("E2")) for s in seeds]
    plan += [(s, ins.guard("P2", env._map(s).free[len(env._map(s).free) // 2])) for s in seeds]
    majority = fixed_chooser({"target": ("target_nearest", {}), "move": ("move_surround", {})})
    expert = aggregate([play_with_functions(env, s, i, expert_chooser(), functions) for s, i in plan])
    baseline = aggregate([play_with_functions(env, s, i, majority, functions) for s, i in plan])
    assert expert["success_rate"] >= 0.85 and expert["invalid_rate"] == 0.0
    assert expert["success_rate"] >= baseline["success_rate"] + 0.25

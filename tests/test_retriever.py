"""BM25 retrieval of functions for (stage, instruction, state)."""

from generation.ld.functions.retriever import FunctionRetriever, Indexed

ENTRIES = [
    Indexed("target_nearest", "target", "Each pursuer targets its nearest free evader."),
    Indexed("target_evader", "target", "All pursuers target one named evader. Use when an evader must be captured first."),
    Indexed("guard_cell", "target", "One pursuer guards a cell; the others target their nearest evader. Use for guard instructions."),
    Indexed("spread_out", "target", "Pursuers spread over the map to explore."),
    Indexed("move_direct", "move", "Move each pursuer one step along a shortest path to its target."),
    Indexed("move_surround", "move", "Pursuers sharing a target approach it from different sides."),
]


def test_guard_instruction_ranks_guard_first():
    r = FunctionRetriever(ENTRIES)
    assert r.top_k("target P2 must guard cell 3,4 while the others capture all evaders", 2, stage="target")[0] == "guard_cell"


def test_capture_first_ranks_target_evader_first():
    r = FunctionRetriever(ENTRIES)
    assert r.top_k("target Capture E2 first, then capture all evaders", 1, stage="target") == ["target_evader"]


def test_stage_filter_and_k():
    r = FunctionRetriever(ENTRIES)
    got = r.top_k("move shortest path", 5, stage="move")
    assert set(got) == {"move_direct", "move_surround"}
    assert len(r.top_k("anything", 3)) == 3
    assert r.top_k("anything", 0) == []


def test_function_added_at_run_time_is_retrievable():
    r = FunctionRetriever(ENTRIES)
    r.add([Indexed("avoid_hazard", "move", "Move around the hazard region; never step on hazard cells.")])
    assert r.top_k("move hazard region appeared", 1, stage="move") == ["avoid_hazard"]


def test_deterministic_ties():
    r = FunctionRetriever(ENTRIES)
    assert r.top_k("zzz", 3) == r.top_k("zzz", 3)

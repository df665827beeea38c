"""Evenly spaced decision sampling per episode."""

from dataclasses import dataclass

import pytest

from generation.ld.sampling import evenly_spaced_steps, keep_steps


@pytest.mark.parametrize("n, keep, expected", [
    (10, None, set(range(10))), (10, 20, set(range(10))), (10, 1, {0}), (10, 2, {0, 9}),
    (9, 3, {0, 4, 8}), (17, 4, {0, 5, 11, 16}), (5, 0, set()),
])
def test_evenly_spaced_steps(n, keep, expected):
    assert evenly_spaced_steps(n, keep) == expected


def test_keep_steps_keeps_every_stage_of_a_kept_step():
    @dataclass
    class Rec:
        step: int
        stage: str

    records = [Rec(s, st) for s in range(6) for st in ("target", "move")]
    kept = keep_steps(records, 6, 2)
    assert [(r.step, r.stage) for r in kept] == [(0, "target"), (0, "move"), (5, "target"), (5, "move")]

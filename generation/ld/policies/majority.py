"""The 'most frequent choice' baseline: always the teacher's most common function sequence."""

from __future__ import annotations

from collections import Counter

from generation.ld.policies.base import PolicyReply, SelectionRequest
from generation.storage.records import StageDecisionRecord


class MajorityPolicy:
    kind = "select"

    def __init__(self, completion_per_stage: dict[str, str]):
        self.completion_per_stage = completion_per_stage

    @classmethod
    def from_records(cls, records: list[StageDecisionRecord]) -> "MajorityPolicy":
        """The most common full sequence of per-stage calls over the teacher's steps."""
        steps: dict[tuple[str, int], dict[str, str]] = {}
        for r in records:
            steps.setdefault((r.episode_id, r.step), {})[r.stage] = r.completion
        counts = Counter(tuple(sorted(seq.items())) for seq in steps.values())
        if not counts:
            raise ValueError("no teacher decisions to take a majority from")
        return cls(dict(counts.most_common(1)[0][0]))

    def select(self, requests: list[SelectionRequest]) -> list[PolicyReply]:
        return [PolicyReply(self.completion_per_stage.get(r.stage, "")) for r in requests]

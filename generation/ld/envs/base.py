"""The interface every decision environment implements (pursuit, 21 Points, user environments).

The pipeline talks to games only through `DecisionEnv`, so nothing downstream special-cases a game.
A step is decided by running the env's `stages` in order (one function call per stage, each fed the
previous stage's result); the last stage's result is the decision handed to `step`.

Seed splits: `train_seeds(n)` = 0..n-1 and `heldout_seeds(n)` = 1_000_000..1_000_000+n-1. Both are
capped at `SEED_SPLIT_SIZE` seeds, so the two ranges are disjoint by construction.

Optional hooks (defaults keep an env simple): `emergencies()` announces new rules mid-episode (the
rollout then asks the teacher for functions), `breakdown_keys` names the `episode_metrics()` keys
results are broken down by, and `episode_metrics()["scores"]` carries env-specific numbers that
`aggregate` averages under their own names (21 Points: win_rate, bust_rate, mean_reward).
The README section "Your own environment" walks through a complete small env.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

SEED_SPLIT_SIZE = 1_000_000
HELDOUT_SEED_OFFSET = SEED_SPLIT_SIZE


def _check_split_size(n: int) -> None:
    if not isinstance(n, int) or n < 0 or n > SEED_SPLIT_SIZE:
        raise ValueError(f"number of seeds must be an int in [0, {SEED_SPLIT_SIZE}], got {n!r}")


def train_seeds(n: int) -> list[int]:
    """Seeds for data generation and training rollouts: 0 .. n-1."""
    _check_split_size(n)
    return list(range(n))


def heldout_seeds(n: int) -> list[int]:
    """Seeds for evaluation only: 1_000_000 .. 1_000_000+n-1 (never produced by `train_seeds`)."""
    _check_split_size(n)
    return list(range(HELDOUT_SEED_OFFSET, HELDOUT_SEED_OFFSET + n))


def is_heldout_seed(seed: int) -> bool:
    """True for evaluation seeds: an env may keep some situations (e.g. emergency kinds) for these only."""
    return seed >= HELDOUT_SEED_OFFSET


class Instruction(BaseModel):
    """What the policy is asked to achieve in one episode; `text` is what prompts show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    params: dict[str, Any] = {}
    text: str


@dataclass(frozen=True)
class Emergency:
    """A new rule announced mid-episode, described in text.

    `id` is unique within its episode; `kind` is one lowercase word naming the sort of event (functions
    written for it are reused for every emergency of that kind, so they must read the details, e.g.
    which cells, from the state, never from `text`); `text` is what the teacher is told.
    """

    id: str
    kind: str
    text: str


@dataclass(frozen=True)
class StepResult:
    """Outcome of one `step`: `invalid` is True when the decision was illegal and replaced by the default."""

    done: bool
    success: bool
    invalid: bool
    info: dict[str, Any] = field(default_factory=dict)


def aggregate(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary of `episode_metrics()` dicts.

    success_rate = successful / episodes; mean_steps = mean `steps` over successful episodes only
    (None when none succeeded); invalid_rate = invalid decisions / decisions (0.0 with no decisions).
    Each number in an episode's optional `scores` dict is averaged under its own name over the
    episodes that report it, so an env adds its own metrics without the pipeline naming them.
    """
    n = len(episodes)
    wins = [e for e in episodes if e["success"]]
    decisions = sum(int(e["decisions"]) for e in episodes)
    invalid = sum(int(e["invalid"]) for e in episodes)
    out = {
        "success_rate": len(wins) / n if n else 0.0,
        "mean_steps": sum(e["steps"] for e in wins) / len(wins) if wins else None,
        "invalid_rate": invalid / decisions if decisions else 0.0,
        "episodes": n,
    }
    scores: dict[str, list[float]] = {}
    for e in episodes:
        for key, value in (e.get("scores") or {}).items():
            scores.setdefault(key, []).append(float(value))
    reserved = sorted(set(scores) & set(out))
    if reserved:
        raise ValueError(f"episode scores may not reuse the names {reserved} (aggregate sets them)")
    out.update({key: sum(values) / len(values) for key, values in sorted(scores.items())})
    return out


def aggregate_by(episodes: list[dict[str, Any]], key: str = "kind") -> dict[str, dict[str, Any]]:
    """`aggregate` per value of `key` (default: per instruction kind), plus "all"."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in episodes:
        groups.setdefault(str(e[key]), []).append(e)
    out = {k: aggregate(v) for k, v in sorted(groups.items())}
    out["all"] = aggregate(episodes)
    return out


class DecisionEnv(ABC):
    """A multi-stage decision environment. Implementations keep one episode's state at a time.

    Contract:
    - `state()` returns JSON-like data; it is exactly what function-base functions receive.
    - `render()` is the compact text policies see; `parse_state_text(render()) == state()`.
    - `step(decision)` never raises for a bad decision: an illegal decision is counted as invalid
      and replaced by `default_decision()`. Stepping a finished episode is a programming error.
    """

    name: str
    stages: list[str]
    breakdown_keys: tuple[str, ...] = ("kind",)  # episode_metrics() keys results are broken down by
    action_question: str = "Decide the action."  # last line of the KD baseline's prompt: what it must decide

    @abstractmethod
    def rules_text(self) -> str: ...

    @abstractmethod
    def sample_instruction(self, seed: int) -> Instruction:
        """The instruction for the episode `reset(seed, ...)` will play (deterministic per seed)."""

    @abstractmethod
    def parse_instruction(self, text: str) -> Instruction: ...

    @abstractmethod
    def reset(self, seed: int, instruction: Instruction) -> None: ...

    @abstractmethod
    def state(self) -> dict[str, Any]: ...

    @abstractmethod
    def render(self) -> str: ...

    @abstractmethod
    def parse_state_text(self, text: str) -> dict[str, Any]: ...

    @abstractmethod
    def legal_decisions(self) -> Any:
        """A JSON-like description of the legal decisions in the current state."""

    @abstractmethod
    def is_legal(self, decision: Any) -> bool: ...

    @abstractmethod
    def default_decision(self) -> Any:
        """What an illegal decision is replaced by (documented per env)."""

    @abstractmethod
    def random_legal_decision(self, rng: random.Random) -> Any:
        """A uniformly random legal decision (the random baseline)."""

    @abstractmethod
    def step(self, decision: Any) -> StepResult: ...

    @abstractmethod
    def episode_metrics(self) -> dict[str, Any]:
        """At least: kind, success, done, steps, decisions, invalid (what `aggregate` reads), plus every
        key in `breakdown_keys`; optionally `scores`, a dict of numbers that `aggregate` averages."""

    def emergencies(self) -> list[Emergency]:
        """The emergencies announced so far in this episode, oldest first (none by default).

        An emergency appears during `step` and stays in the list until `reset`; the state (data and
        text) must show it, so functions written for it can read its details.
        """
        return []

    def _admit(self, decision: Any) -> tuple[Any, bool]:
        """The decision to play and whether it was invalid: an illegal decision is counted and replaced
        by `default_decision()`. Environments keep `_decisions` and `_invalid` counters per episode."""
        invalid = not self.is_legal(decision)
        if invalid:
            decision, self._invalid = self.default_decision(), self._invalid + 1
        self._decisions += 1
        return decision, invalid

    def check_stage_output(self, stage: str, state: dict[str, Any], output: Any) -> str | None:
        """Why `output` is not a valid result of `stage` for `state`, or None when it is.

        The default checks only the last stage (the decision); envs with typed intermediate
        results override this.
        """
        if stage not in self.stages:
            return f"unknown stage {stage!r} (stages: {self.stages})"
        if stage == self.stages[-1] and not self.is_legal(output):
            return f"{stage} result is not a legal decision: {output!r}"
        return None

    @staticmethod
    def aggregate(episodes: list[dict[str, Any]]) -> dict[str, Any]:
        return aggregate(episodes)

    @staticmethod
    def train_seeds(n: int) -> list[int]:
        return train_seeds(n)

    @staticmethod
    def heldout_seeds(n: int) -> list[int]:
        return heldout_seeds(n)

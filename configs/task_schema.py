"""Knobs of the pursuit game. Defaults are the tuned setting documented in docs/pursuit.md."""

from __future__ import annotations

from pydantic import Field, model_validator

from configs.base import StrictModel

INSTRUCTION_KINDS = ("capture_all", "capture_first", "guard")


class PursuitConfig(StrictModel):
    width: int = Field(9, ge=5, le=20)
    height: int = Field(9, ge=5, le=20)
    obstacle_density: float = Field(0.15, ge=0.0, le=0.4)
    n_pursuers: int = Field(3, ge=1, le=9)  # names P1..P9 (one digit keeps the text format simple)
    n_evaders: int = Field(2, ge=1, le=9)
    max_steps: int = Field(40, ge=1, le=1000)
    evader_move_prob: float = Field(0.9, ge=0.0, le=1.0)  # < 1 makes the evaders slower: winnable
    evader_noise: float = Field(0.1, ge=0.0, le=1.0)  # chance a moving evader picks a random move
    min_start_distance: int = Field(3, ge=1)  # evaders start at least this far (BFS) from pursuers
    instruction_mix: dict[str, float] = Field(
        default_factory=lambda: {"capture_all": 1.0, "capture_first": 1.0, "guard": 1.0})

    @model_validator(mode="after")
    def _check(self) -> PursuitConfig:
        unknown = sorted(set(self.instruction_mix) - set(INSTRUCTION_KINDS))
        if unknown:
            raise ValueError(f"instruction_mix has unknown kinds {unknown}; known: {list(INSTRUCTION_KINDS)}")
        if any(w < 0 for w in self.instruction_mix.values()):
            raise ValueError(f"instruction_mix weights must be >= 0, got {self.instruction_mix}")
        if sum(self.instruction_mix.values()) <= 0:
            raise ValueError("instruction_mix needs at least one kind with a positive weight")
        if self.instruction_mix.get("capture_first", 0) > 0 and self.n_evaders < 2:
            raise ValueError("instruction kind capture_first needs n_evaders >= 2")
        if self.instruction_mix.get("guard", 0) > 0 and self.n_pursuers < 2:
            raise ValueError("instruction kind guard needs n_pursuers >= 2 (one guards, the others chase)")
        free = self.width * self.height * (1 - self.obstacle_density)
        if free < 2 * (self.n_pursuers + self.n_evaders):
            raise ValueError(f"{self.width}x{self.height} map at density {self.obstacle_density} is too "
                             f"crowded for {self.n_pursuers} pursuers and {self.n_evaders} evaders")
        return self

"""Knobs of the pursuit game. Defaults are the tuned setting documented in docs/pursuit.md."""

from __future__ import annotations

from pydantic import Field, model_validator

from configs.base import StrictModel

INSTRUCTION_KINDS = ("capture_all", "capture_first", "guard")
# Emergency kinds of the pursuit game and their effect (texts and cell shapes: generation/ld/envs/pursuit/emergencies.py).
# deadly: a pursuer ending a step on one of the cells fails the episode; impassable: nobody can enter them.
# Many kinds share two effects on purpose: a student trained on many of them has to learn to pick "the
# function written for the emergency in force", not memorise a few names (docs/emergencies.md).
_DEADLY = ("fire", "lava", "gas", "radiation", "acid", "toxin", "smoke", "plague", "spikes", "mines", "quicksand",
           "lightning", "wildfire", "sewage", "ooze", "frost")
_IMPASSABLE = ("flood", "barricade", "rockfall", "collapse", "debris", "fence", "landslide", "avalanche",
               "roadblock", "rubble", "wreckage", "sinkhole", "crater", "thicket", "mudslide", "ice")
# evader: a new kind of evader appears (a sprinter that runs two cells a step; generation/ld/envs/pursuit/new_evaders.py).
# Opt-in: the default train_kinds/heldout_kinds keep only the two families above, so configs that do not name
# these kinds play exactly the episodes they played before. Hold out HELDOUT_EVADER_KINDS by config.
_EVADER = ("hare", "fox", "cheetah", "gazelle", "jackal", "weasel", "ferret", "coyote", "antelope", "mongoose",
           "greyhound", "lynx")
HELDOUT_EVADER_KINDS = ("lynx",)
EMERGENCY_KINDS = {**{k: "deadly" for k in _DEADLY}, **{k: "impassable" for k in _IMPASSABLE},
                   **{k: "evader" for k in _EVADER}}
HELDOUT_EMERGENCY_KINDS = ("gas", "acid", "rockfall", "landslide")


def evader_kinds(heldout: bool = False) -> list[str]:
    """The kinds of the `evader` family for train_kinds (heldout=False) or heldout_kinds (heldout=True)."""
    return [k for k in _EVADER if (k in HELDOUT_EVADER_KINDS) == heldout]


def _drill_names(count: int, seed: int = 7) -> tuple[str, ...]:
    """Made-up kind names (e.g. 'qzvbe', 'tmo', 'hwkdaxrp'), fixed by `seed`.

    Letters uniform over a-z and lengths 3..10: a student trained on names that all look alike (an
    earlier version used 5-letter consonant-vowel words) learns their shape instead of copying, and
    then cuts a held-out `rockfall` short or runs `gas` on.
    """
    import random
    import string

    rng, names = random.Random(seed), []
    while len(names) < count:
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))
        if name not in names and name not in EMERGENCY_KINDS and name != "none":
            names.append(name)
    return tuple(names)


# Drills: made-up kinds for training only. With hundreds of names no student can memorise "kind X ->
# function move_X"; it has to learn to copy the kind it reads in the state into the call, which is
# what an unseen kind needs (docs/emergencies.md). Their effects alternate between the two families.
DRILL_KINDS = _drill_names(400)
EMERGENCY_KINDS.update({k: ("deadly", "impassable")[i % 2] for i, k in enumerate(DRILL_KINDS)})


def known_kinds_hint() -> str:
    return f"known: {', '.join((*_DEADLY, *_IMPASSABLE, *_EVADER))} and {len(DRILL_KINDS)} drill kinds ({DRILL_KINDS[0]}, ...)"


class EmergencyConfig(StrictModel):
    """Emergencies announced mid-episode (docs/emergencies.md). `probability` 0 is the plain game.

    Training seeds draw their kind from `train_kinds`, held-out seeds from `heldout_kinds`, so the
    held-out kinds are never seen in the training data.
    """

    probability: float = Field(0.0, ge=0.0, le=1.0, description="share of episodes with an emergency")
    onset_steps: list[int] = Field(default_factory=lambda: [2, 6], description="[first, last] step it may appear")
    train_kinds: list[str] = Field(default_factory=lambda: [k for k in (*_DEADLY, *_IMPASSABLE)
                                                            if k not in HELDOUT_EMERGENCY_KINDS])
    heldout_kinds: list[str] = Field(default_factory=lambda: list(HELDOUT_EMERGENCY_KINDS))
    drill_kinds: int = Field(0, ge=0, le=len(DRILL_KINDS),
                             description="made-up kinds (configs.task_schema.DRILL_KINDS) added to train_kinds")

    @property
    def train_pool(self) -> list[str]:
        """The kinds training seeds draw from: train_kinds plus the first `drill_kinds` drills."""
        return list(self.train_kinds) + [k for k in DRILL_KINDS[:self.drill_kinds] if k not in self.train_kinds]

    @model_validator(mode="after")
    def _check(self) -> EmergencyConfig:
        if len(self.onset_steps) != 2 or not 1 <= self.onset_steps[0] <= self.onset_steps[1]:
            raise ValueError(f"onset_steps must be [first, last] with 1 <= first <= last, got {self.onset_steps}")
        for field in ("train_kinds", "heldout_kinds"):
            kinds = getattr(self, field)
            unknown = sorted(set(kinds) - set(EMERGENCY_KINDS))
            if unknown:
                raise ValueError(f"{field} has unknown emergency kinds {unknown}; {known_kinds_hint()}")
            if self.probability > 0 and not kinds:
                raise ValueError(f"{field} must name at least one kind when probability > 0")
        shared = sorted(set(self.train_pool) & set(self.heldout_kinds))
        if shared:
            raise ValueError(f"emergency kinds {shared} are both in train_kinds and heldout_kinds")
        return self


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
    emergencies: EmergencyConfig = EmergencyConfig()

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
        if self.emergencies.probability > 0 and self.emergencies.onset_steps[0] >= self.max_steps:
            raise ValueError(f"emergencies.onset_steps {self.emergencies.onset_steps} start after max_steps "
                             f"{self.max_steps}: no emergency could ever appear")
        return self


TWENTYONE_KINDS = ("win", "reach", "cards")


class TwentyOneConfig(StrictModel):
    """Knobs of 21 Points (docs/twentyone.md). Defaults are the documented setting."""

    dealer_hits_soft_17: bool = False  # the dealer stands on every 17 by default
    allow_double: bool = True  # "double" as the first decision: one more card, twice the stake
    reach_totals: list[int] = Field(default_factory=lambda: [15, 16, 17, 18, 19],
                                    description="targets T of 'Finish with a total of at least T ...'")
    card_counts: list[int] = Field(default_factory=lambda: [3, 4],
                                   description="N of 'Finish holding at least N cards ...'")
    instruction_mix: dict[str, float] = Field(default_factory=lambda: {"win": 1.0, "reach": 1.0, "cards": 1.0})

    @model_validator(mode="after")
    def _check(self) -> TwentyOneConfig:
        unknown = sorted(set(self.instruction_mix) - set(TWENTYONE_KINDS))
        if unknown:
            raise ValueError(f"instruction_mix has unknown kinds {unknown}; known: {list(TWENTYONE_KINDS)}")
        if any(w < 0 for w in self.instruction_mix.values()) or sum(self.instruction_mix.values()) <= 0:
            raise ValueError(f"instruction_mix weights must be >= 0 with one positive, got {self.instruction_mix}")
        if not self.reach_totals or any(not 12 <= t <= 21 for t in self.reach_totals):
            raise ValueError(f"reach_totals must be a non-empty list of totals in 12..21, got {self.reach_totals}")
        if not self.card_counts or any(not 3 <= n <= 6 for n in self.card_counts):
            raise ValueError(f"card_counts must be a non-empty list of counts in 3..6, got {self.card_counts}")
        return self
